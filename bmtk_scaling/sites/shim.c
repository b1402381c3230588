/* bmtk-scaling's emulated multi-site latency: an MPI profiling (PMPI) interposition library.
 *
 * Loaded with LD_PRELOAD into every rank, it defines the MPI calls NEURON and CoreNEURON make and
 * forwards each to its PMPI_ twin, adding delay when the call crosses "sites":
 *   - a collective on a communicator whose ranks sit on more than one site returns
 *     latency + bytes / bandwidth after the real collective did (bytes: what this rank receives
 *     from ranks on other sites);
 *   - a point-to-point message to a rank on another site is delivered latency + bytes / bandwidth
 *     after it was sent: the sender first sends its delivery time on a hidden duplicate communicator,
 *     and the receiver does not complete Recv / Probe (nor report it from Iprobe) before that time.
 * All ranks run on one host, so CLOCK_MONOTONIC is one clock for every rank.
 *
 * Settings come from the environment (the runner sets them):
 *   BMTK_SCALING_SITE_MAP      site of each MPI_COMM_WORLD rank, comma separated ("0,0,1,1")
 *   BMTK_SCALING_LATENCY_US    one-way latency between sites, microseconds
 *   BMTK_SCALING_BANDWIDTH_BPS bytes per second between sites; 0 or unset: unlimited
 *   BMTK_SCALING_SITES_OUT     folder for rank<k>.sites.json, the counts, written at MPI_Finalize
 * MPI_Initialized is deliberately not defined: NEURON looks that symbol up to find libmpi.
 * A small cross-site Isend is sent before MPI_Isend returns (its request comes back complete), see MPI_Isend.
 * Not delayed (no wrapper): Ssend, Rsend, Bsend, Sendrecv, persistent and nonblocking receives,
 * nonblocking collectives; intercommunicators.
 */
#define _GNU_SOURCE
#include <mpi.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_COMMS 128
#define MAX_STAMPS 1024
#define SPIN_S 200e-6 /* sleep until this close to the deadline, then spin: sleeps overshoot */

typedef struct {
    MPI_Comm comm;
    MPI_Comm hidden; /* MPI_COMM_NULL: point-to-point on this communicator is not delayed */
    int size;
    int *site;       /* site of each rank of comm */
    int spans;       /* ranks on more than one site */
} comm_entry;

typedef struct {
    int used;
    MPI_Comm comm;
    int source, tag;
    double deliver;
} stamp_entry;

static int ready = 0, world_rank = 0, world_size = 1, nsites_map = 0;
static int *world_site = NULL;
static double latency_s = 0.0, bandwidth_bps = 0.0;
static comm_entry comms[MAX_COMMS];
static int ncomms = 0;
static stamp_entry stamps[MAX_STAMPS];

/* counters: index order is the one bmtk_scaling_sites_counters() reports */
enum { C_CROSS_COLL, C_LOCAL_COLL, C_MSG_SENT, C_MSG_RECV, C_BYTES, C_MODEL_DELAY, C_WAITED, C_UNDELAYED, NCOUNT };
static double counts[NCOUNT];
static const char *count_names[NCOUNT] = {"cross_site_collectives", "local_collectives", "cross_site_messages_sent",
                                          "cross_site_messages_received", "cross_site_bytes", "model_delay_s",
                                          "waited_s", "undelayed_messages"};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void wait_until(double deadline) {
    double start = now_s(), left;
    while ((left = deadline - now_s()) > 0) {
        if (left > SPIN_S) {
            double s = left - SPIN_S;
            struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
            nanosleep(&ts, NULL);
        } /* else spin: a sched_yield here hands the core to another process for a whole time slice */
    }
    double waited = now_s() - start;
    counts[C_WAITED] += waited > 0 ? waited : 0;
}

static int site_of_world(int r) { return (r >= 0 && r < nsites_map) ? world_site[r] : 0; }

static void parse_env(void) {
    const char *map = getenv("BMTK_SCALING_SITE_MAP");
    const char *lat = getenv("BMTK_SCALING_LATENCY_US");
    const char *bw = getenv("BMTK_SCALING_BANDWIDTH_BPS");
    latency_s = lat ? atof(lat) * 1e-6 : 0.0;
    bandwidth_bps = bw ? atof(bw) : 0.0;
    nsites_map = 0;
    if (map && *map) {
        int n = 1;
        for (const char *p = map; *p; p++) n += (*p == ',');
        world_site = calloc((size_t)n, sizeof(int));
        char *copy = strdup(map), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok && nsites_map < n; tok = strtok_r(NULL, ",", &save))
            world_site[nsites_map++] = atoi(tok);
        free(copy);
    }
}

/* The entry of comm, computed from its group (a local operation) when the communicator is new to us. */
static comm_entry *entry_of(MPI_Comm comm) {
    for (int i = 0; i < ncomms; i++)
        if (comms[i].comm == comm) return &comms[i];
    if (ncomms >= MAX_COMMS || comm == MPI_COMM_NULL) return NULL;
    int inter = 0;
    PMPI_Comm_test_inter(comm, &inter);
    comm_entry *e = &comms[ncomms++];
    e->comm = comm;
    e->hidden = MPI_COMM_NULL;
    e->spans = 0;
    if (inter) {
        e->size = 0;
        e->site = NULL;
        return e;
    }
    MPI_Group group, world_group;
    PMPI_Comm_size(comm, &e->size);
    PMPI_Comm_group(comm, &group);
    PMPI_Comm_group(MPI_COMM_WORLD, &world_group);
    int *ranks = malloc(sizeof(int) * (size_t)e->size), *wranks = malloc(sizeof(int) * (size_t)e->size);
    for (int i = 0; i < e->size; i++) ranks[i] = i;
    PMPI_Group_translate_ranks(group, e->size, ranks, world_group, wranks);
    e->site = malloc(sizeof(int) * (size_t)e->size);
    for (int i = 0; i < e->size; i++) {
        e->site[i] = site_of_world(wranks[i]);
        if (e->site[i] != e->site[0]) e->spans = 1;
    }
    free(ranks);
    free(wranks);
    PMPI_Group_free(&group);
    PMPI_Group_free(&world_group);
    return e;
}

/* A communicator just made collectively: give it a hidden twin for delivery times (collective too). */
static void register_new(MPI_Comm comm) {
    if (!ready || comm == MPI_COMM_NULL) return;
    comm_entry *e = entry_of(comm);
    if (e && e->site && e->spans && e->hidden == MPI_COMM_NULL) PMPI_Comm_dup(comm, &e->hidden);
}

static void setup(void) {
    if (ready) return;
    parse_env();
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake from nanosleep on time, not up to 50 us late */
    PMPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    PMPI_Comm_size(MPI_COMM_WORLD, &world_size);
    ready = 1;
    register_new(MPI_COMM_WORLD);
}

static double transfer_s(double bytes) { return latency_s + (bandwidth_bps > 0 ? bytes / bandwidth_bps : 0.0); }

static double type_bytes(MPI_Datatype t, double count) {
    int size = 0;
    if (t != MPI_DATATYPE_NULL) PMPI_Type_size(t, &size);
    return count * size;
}

static int my_rank_in(comm_entry *e) {
    int r = 0;
    PMPI_Comm_rank(e->comm, &r);
    return r;
}

/* Bytes this rank receives from ranks on another site: counts[i] (or count for all) elements each. */
static double remote_bytes(comm_entry *e, const int *percount, int count, MPI_Datatype t) {
    int me = my_rank_in(e);
    double n = 0;
    for (int i = 0; i < e->size; i++)
        if (e->site[i] != e->site[me]) n += percount ? percount[i] : count;
    return type_bytes(t, n);
}

/* After a collective has completed: pay the model's delay if it crossed sites. */
static void after_collective(MPI_Comm comm, double bytes) {
    if (!ready) setup();
    comm_entry *e = entry_of(comm);
    if (!e || !e->spans) {
        counts[C_LOCAL_COLL] += 1;
        return;
    }
    double d = transfer_s(bytes);
    counts[C_CROSS_COLL] += 1;
    counts[C_BYTES] += bytes;
    counts[C_MODEL_DELAY] += d;
    if (d > 0) wait_until(now_s() + d);
}

/* ---- delivery times of point-to-point messages ---- */

static stamp_entry *find_stamp(MPI_Comm comm, int source, int tag) {
    for (int i = 0; i < MAX_STAMPS; i++)
        if (stamps[i].used && stamps[i].comm == comm && stamps[i].source == source && stamps[i].tag == tag)
            return &stamps[i];
    return NULL;
}

/* The delivery time of the next message from (source, tag): fetched once, kept until received. */
static double peek_stamp(comm_entry *e, int source, int tag) {
    stamp_entry *s = find_stamp(e->comm, source, tag);
    if (s) return s->deliver;
    double deliver = 0;
    PMPI_Recv(&deliver, 1, MPI_DOUBLE, source, tag, e->hidden, MPI_STATUS_IGNORE);
    for (int i = 0; i < MAX_STAMPS; i++)
        if (!stamps[i].used) {
            stamps[i] = (stamp_entry){1, e->comm, source, tag, deliver};
            break;
        }
    return deliver;
}

static void take_stamp(comm_entry *e, int source, int tag) {
    double deliver = peek_stamp(e, source, tag);
    stamp_entry *s = find_stamp(e->comm, source, tag);
    if (s) s->used = 0;
    counts[C_MSG_RECV] += 1;
    if (deliver > now_s()) wait_until(deliver);
}

static int crosses(comm_entry *e, int other) {
    return e && e->site && e->spans && other >= 0 && other < e->size && e->site[other] != e->site[my_rank_in(e)];
}

static void before_send(int count, MPI_Datatype t, int dest, int tag, MPI_Comm comm) {
    if (!ready) setup();
    comm_entry *e = entry_of(comm);
    if (!crosses(e, dest)) return;
    if (e->hidden == MPI_COMM_NULL) {
        counts[C_UNDELAYED] += 1;
        return;
    }
    double bytes = type_bytes(t, count), d = transfer_s(bytes), deliver = now_s() + d;
    counts[C_MSG_SENT] += 1;
    counts[C_BYTES] += bytes;
    counts[C_MODEL_DELAY] += d;
    PMPI_Send(&deliver, 1, MPI_DOUBLE, dest, tag, e->hidden);
}

static void after_receive(MPI_Comm comm, MPI_Status *st) {
    comm_entry *e = entry_of(comm);
    if (!crosses(e, st->MPI_SOURCE) || e->hidden == MPI_COMM_NULL) return;
    take_stamp(e, st->MPI_SOURCE, st->MPI_TAG);
}

/* ---- the wrapped calls ---- */

int MPI_Init(int *argc, char ***argv) {
    int rc = PMPI_Init(argc, argv);
    setup();
    return rc;
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided) {
    int rc = PMPI_Init_thread(argc, argv, required, provided);
    setup();
    return rc;
}

static void write_counts(void) {
    const char *dir = getenv("BMTK_SCALING_SITES_OUT");
    if (!dir || !*dir) return;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/rank%d.sites.json", dir, world_rank);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "{\"rank\": %d, \"site\": %d, \"latency_s\": %.9g, \"bandwidth_bps\": %.9g", world_rank,
            site_of_world(world_rank), latency_s, bandwidth_bps);
    for (int i = 0; i < NCOUNT; i++) fprintf(f, ", \"%s\": %.9g", count_names[i], counts[i]);
    fprintf(f, "}\n");
    if (fclose(f) == 0) rename(tmp, path);
}

int MPI_Finalize(void) {
    if (ready) write_counts();
    return PMPI_Finalize();
}

/* For the simulator (ctypes): copy up to n counters into out; returns how many there are. */
int bmtk_scaling_sites_counters(double *out, int n) {
    for (int i = 0; i < n && i < NCOUNT; i++) out[i] = counts[i];
    return NCOUNT;
}

const char *bmtk_scaling_sites_counter_name(int i) { return (i >= 0 && i < NCOUNT) ? count_names[i] : NULL; }

int MPI_Comm_dup(MPI_Comm comm, MPI_Comm *newcomm) {
    int rc = PMPI_Comm_dup(comm, newcomm);
    if (rc == MPI_SUCCESS) register_new(*newcomm);
    return rc;
}

int MPI_Comm_create(MPI_Comm comm, MPI_Group group, MPI_Comm *newcomm) {
    int rc = PMPI_Comm_create(comm, group, newcomm);
    if (rc == MPI_SUCCESS) register_new(*newcomm);
    return rc;
}

int MPI_Comm_split(MPI_Comm comm, int color, int key, MPI_Comm *newcomm) {
    int rc = PMPI_Comm_split(comm, color, key, newcomm);
    if (rc == MPI_SUCCESS) register_new(*newcomm);
    return rc;
}

int MPI_Comm_free(MPI_Comm *comm) {
    for (int i = 0; i < ncomms; i++)
        if (comms[i].comm == *comm) {
            if (comms[i].hidden != MPI_COMM_NULL) PMPI_Comm_free(&comms[i].hidden);
            free(comms[i].site);
            comms[i] = comms[--ncomms];
            break;
        }
    return PMPI_Comm_free(comm);
}

int MPI_Barrier(MPI_Comm comm) {
    int rc = PMPI_Barrier(comm);
    after_collective(comm, 0);
    return rc;
}

static double root_bytes(MPI_Comm comm, int root, int count, MPI_Datatype t) {
    comm_entry *e = entry_of(comm);
    return (e && e->spans && e->site && root >= 0 && root < e->size) ? type_bytes(t, count) : 0;
}

int MPI_Bcast(void *buffer, int count, MPI_Datatype datatype, int root, MPI_Comm comm) {
    int rc = PMPI_Bcast(buffer, count, datatype, root, comm);
    after_collective(comm, root_bytes(comm, root, count, datatype));
    return rc;
}

int MPI_Reduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op, int root,
               MPI_Comm comm) {
    int rc = PMPI_Reduce(sendbuf, recvbuf, count, datatype, op, root, comm);
    after_collective(comm, root_bytes(comm, root, count, datatype));
    return rc;
}

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op, MPI_Comm comm) {
    int rc = PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
    after_collective(comm, type_bytes(datatype, count));
    return rc;
}

static double remote(MPI_Comm comm, const int *percount, int count, MPI_Datatype t) {
    if (!ready) setup();
    comm_entry *e = entry_of(comm);
    return (e && e->spans && e->site) ? remote_bytes(e, percount, count, t) : 0;
}

int MPI_Allgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, int recvcount,
                  MPI_Datatype recvtype, MPI_Comm comm) {
    int rc = PMPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
    after_collective(comm, remote(comm, NULL, recvcount, recvtype));
    return rc;
}

int MPI_Allgatherv(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, const int recvcounts[],
                   const int displs[], MPI_Datatype recvtype, MPI_Comm comm) {
    int rc = PMPI_Allgatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts, displs, recvtype, comm);
    after_collective(comm, remote(comm, recvcounts, 0, recvtype));
    return rc;
}

int MPI_Gather(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, int recvcount,
               MPI_Datatype recvtype, int root, MPI_Comm comm) {
    int rc = PMPI_Gather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, root, comm);
    after_collective(comm, type_bytes(sendtype, sendcount));
    return rc;
}

int MPI_Gatherv(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, const int recvcounts[],
                const int displs[], MPI_Datatype recvtype, int root, MPI_Comm comm) {
    int rc = PMPI_Gatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts, displs, recvtype, root, comm);
    after_collective(comm, type_bytes(sendtype, sendcount));
    return rc;
}

int MPI_Scatter(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, int recvcount,
                MPI_Datatype recvtype, int root, MPI_Comm comm) {
    int rc = PMPI_Scatter(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, root, comm);
    after_collective(comm, type_bytes(recvtype, recvcount));
    return rc;
}

int MPI_Scatterv(const void *sendbuf, const int sendcounts[], const int displs[], MPI_Datatype sendtype,
                 void *recvbuf, int recvcount, MPI_Datatype recvtype, int root, MPI_Comm comm) {
    int rc = PMPI_Scatterv(sendbuf, sendcounts, displs, sendtype, recvbuf, recvcount, recvtype, root, comm);
    after_collective(comm, type_bytes(recvtype, recvcount));
    return rc;
}

int MPI_Alltoall(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, int recvcount,
                 MPI_Datatype recvtype, MPI_Comm comm) {
    int rc = PMPI_Alltoall(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
    after_collective(comm, remote(comm, NULL, recvcount, recvtype));
    return rc;
}

int MPI_Alltoallv(const void *sendbuf, const int sendcounts[], const int sdispls[], MPI_Datatype sendtype,
                  void *recvbuf, const int recvcounts[], const int rdispls[], MPI_Datatype recvtype, MPI_Comm comm) {
    int rc = PMPI_Alltoallv(sendbuf, sendcounts, sdispls, sendtype, recvbuf, recvcounts, rdispls, recvtype, comm);
    after_collective(comm, remote(comm, recvcounts, 0, recvtype));
    return rc;
}

int MPI_Reduce_scatter(const void *sendbuf, void *recvbuf, const int recvcounts[], MPI_Datatype datatype, MPI_Op op,
                       MPI_Comm comm) {
    int rc = PMPI_Reduce_scatter(sendbuf, recvbuf, recvcounts, datatype, op, comm);
    if (!ready) setup();
    comm_entry *e = entry_of(comm);
    after_collective(comm, e && e->site ? type_bytes(datatype, recvcounts[my_rank_in(e)]) : 0);
    return rc;
}

int MPI_Send(const void *buf, int count, MPI_Datatype datatype, int dest, int tag, MPI_Comm comm) {
    before_send(count, datatype, dest, tag, comm);
    return PMPI_Send(buf, count, datatype, dest, tag, comm);
}

/* A generalized request that is complete from the start: what a cross-site Isend returns (below). */
static int done_query(void *extra, MPI_Status *st) {
    (void)extra;
    PMPI_Status_set_elements(st, MPI_BYTE, 0);
    PMPI_Status_set_cancelled(st, 0);
    st->MPI_SOURCE = MPI_UNDEFINED;
    st->MPI_TAG = MPI_UNDEFINED;
    return MPI_SUCCESS;
}
static int done_free(void *extra) { (void)extra; return MPI_SUCCESS; }
static int done_cancel(void *extra, int complete) { (void)extra; (void)complete; return MPI_SUCCESS; }

#define EAGER_BYTES 16384 /* cross-site Isends up to this size are sent at once (see MPI_Isend) */

/* A small cross-site Isend is sent at once (PMPI_Send: the buffer is free when it returns) and returns a
 * request that is already complete. CoreNEURON's multisend frees each Isend's request and reuses the spike
 * buffer at once, which is safe only while MPICH copies small messages immediately; the delivery-time
 * messages double the traffic, MPICH then queued some sends by reference, and the reused buffer sent the
 * wrong spike (multisend.cpp's gid2in assertion, changed spikes). */
int MPI_Isend(const void *buf, int count, MPI_Datatype datatype, int dest, int tag, MPI_Comm comm,
              MPI_Request *request) {
    before_send(count, datatype, dest, tag, comm);
    comm_entry *e = ready ? entry_of(comm) : NULL;
    if (crosses(e, dest) && e->hidden != MPI_COMM_NULL && type_bytes(datatype, count) <= EAGER_BYTES) {
        int rc = PMPI_Send(buf, count, datatype, dest, tag, comm);
        if (rc != MPI_SUCCESS) return rc;
        PMPI_Grequest_start(done_query, done_free, done_cancel, NULL, request);
        return PMPI_Grequest_complete(*request);
    }
    return PMPI_Isend(buf, count, datatype, dest, tag, comm, request);
}

int MPI_Recv(void *buf, int count, MPI_Datatype datatype, int source, int tag, MPI_Comm comm, MPI_Status *status) {
    MPI_Status local;
    MPI_Status *st = status == MPI_STATUS_IGNORE ? &local : status;
    int rc = PMPI_Recv(buf, count, datatype, source, tag, comm, st);
    if (rc == MPI_SUCCESS && ready) after_receive(comm, st);
    return rc;
}

int MPI_Probe(int source, int tag, MPI_Comm comm, MPI_Status *status) {
    MPI_Status local;
    MPI_Status *st = status == MPI_STATUS_IGNORE ? &local : status;
    int rc = PMPI_Probe(source, tag, comm, st);
    if (rc != MPI_SUCCESS || !ready) return rc;
    comm_entry *e = entry_of(comm);
    if (crosses(e, st->MPI_SOURCE) && e->hidden != MPI_COMM_NULL) {
        double deliver = peek_stamp(e, st->MPI_SOURCE, st->MPI_TAG);
        if (deliver > now_s()) wait_until(deliver);
    }
    return rc;
}

int MPI_Iprobe(int source, int tag, MPI_Comm comm, int *flag, MPI_Status *status) {
    MPI_Status local;
    MPI_Status *st = status == MPI_STATUS_IGNORE ? &local : status;
    int rc = PMPI_Iprobe(source, tag, comm, flag, st);
    if (rc != MPI_SUCCESS || !*flag || !ready) return rc;
    comm_entry *e = entry_of(comm);
    if (crosses(e, st->MPI_SOURCE) && e->hidden != MPI_COMM_NULL) {
        if (peek_stamp(e, st->MPI_SOURCE, st->MPI_TAG) > now_s()) *flag = 0; /* not arrived yet */
    }
    return rc;
}
