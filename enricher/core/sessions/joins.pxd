# Compiled layout of Joins (stitcher.pxd explains the typing).
cimport cython
from enricher.core.sessions.expiry cimport ExpiryIndex
from enricher.core.sessions.merge cimport later_kind
from enricher.core.sessions.session cimport Session, _body_sum, _line_key, _repeated
from enricher.core.sessions.table cimport SessionTable


cdef class Joins(SessionTable):
    @cython.locals(rec=Session, key=tuple)
    cpdef _join_delivery(self, Session s, ev, ts)
    @cython.locals(c=Session, key=tuple)
    cpdef Session _connection(self, app, icid, ts)
    @cython.locals(c=Session, old=Session, v=Session, key=tuple, lk=bytes, fresh=bint, revived=bint, views=list)
    cpdef _on_connection(self, ev, double ts)
    @cython.locals(m=Session, v=Session, key=tuple, written=bint)
    cpdef list _shown(self, Session c, double ts, bint revived)
    @cython.locals(fresh=bint)
    cpdef _apply_view(self, Session v, ev, double ts, kind)
    @cython.locals(c=Session, held=Session, key=tuple)
    cpdef Session _standalone(self, ev, ts, bytes lk)
    @cython.locals(c=Session, lk=bytes)
    cpdef _on_icid_zero(self, ev, ts)
    @cython.locals(c=Session, held=Session, v=Session, lk=bytes, views=list)
    cpdef _on_dhap(self, ev, ts)
    @cython.locals(g=Session, key=tuple)
    cpdef _adopt_dhap(self, Session c, ts, waiting)
    @cython.locals(rec=Session, msg=Session, key=tuple, lk=bytes)
    cpdef _on_delivery_connection(self, ev, ts)
