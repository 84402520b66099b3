# Compiled layout of Stitcher (Cython pure Python mode; stitcher.py is the definition and runs as is).
# The per-line methods are cpdef (called from compiled code without a Python call) and their session
# locals are typed, so field access is a C struct member access. Python sees the same class.
cimport cython
from enricher.core.sessions.expiry cimport ExpiryIndex
from enricher.core.sessions.merge cimport later_kind
from enricher.core.sessions.session cimport Session, _line_key, _repeated
from enricher.core.sessions.joins cimport Joins


cdef class Stitcher(Joins):
    @cython.locals(out=list)
    cpdef list feed(self, ev, now=*)
    @cython.locals(s=Session, conn=Session, v=Session, refile=bint, key=tuple, lk=bytes, views=list)
    cpdef _on_message(self, ev, double ts, app, kind, mid)
