"""bionet"""
