# Compiled layout of ExpiryIndex (Cython pure Python mode; expiry.py is the definition and runs as is).
cimport cython

from enricher.core.sessions.session cimport Session


cdef class ExpiryIndex:
    cdef public dict _buckets
    cdef public list _heap
    cdef public Py_ssize_t _entries
    cdef public Py_ssize_t _compact_at

    @cython.locals(b=long, q=object)
    cpdef file(self, Session s)

