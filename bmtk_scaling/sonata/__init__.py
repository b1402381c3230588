"""sonata"""
