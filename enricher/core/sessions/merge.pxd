# Compiled-mode declarations (Cython pure Python mode): Session fields as C struct members.
from enricher.core.sessions.session cimport Session


cdef dict _KIND_ORDER
cpdef bint later_kind(str kind, str last)
