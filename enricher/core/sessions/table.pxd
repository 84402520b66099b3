# Compiled layout of SessionTable, the base of Stitcher (stitcher.pxd explains the typing).
cimport cython
from enricher.core.sessions.expiry cimport ExpiryIndex
from enricher.core.sessions.merge cimport later_kind
from enricher.core.sessions.session cimport Session, _repeated


cdef class SessionTable:
    cdef public object config
    cdef public bint _keep_raw
    cdef public Py_ssize_t _max_open
    cdef public object stats
    cdef public dict appliances
    cdef public dict _open
    cdef public Py_ssize_t _seq
    cdef public dict _watermark
    cdef public dict _arrival
    cdef public dict _expiry
    cdef public dict _grace
    cdef public dict _grace_dues
    cdef public object _dormant
    cdef public object _closed
    cdef public object _digests
    cdef public double _retention
    cdef public dict _by_ip
    cdef public dict _dhap_waiting
    cdef public dict _pending_links
    cdef public dict _pending_children
    cdef public list _out
    cdef public Py_ssize_t _session_lines
    cdef public object before_apply

    cpdef _hold(self, Session s)
    @cython.locals(idx=ExpiryIndex)
    cpdef _file(self, Session s)
    @cython.locals(s=Session)
    cpdef Session _recall(self, tuple key, ts, kind)
    cpdef Session _reopen(self, tuple key, ts, kind, bytes lk, ev)
    cpdef bint _was_forgotten(self, tuple key, ts, kind)
    @cython.locals(key=tuple)
    cpdef _forget(self, Session s)
    cpdef _revive(self, Session s, ts)
    @cython.locals(other=Session, key=tuple)
    cpdef _link(self, app, other_mid, field_name, value)
    cpdef _copy_delivery(self, Session rec, Session s)
    cpdef _apply(self, Session c, bytes lk, str raw)
    @cython.locals(m=Session, mids=list)
    cpdef _mark_in_flight(self, Session c)
    cpdef _schedule(self, app, ts, tuple key)
    @cython.locals(q=dict, keys=list)
    cpdef _due_at(self, app, due, tuple key)
    @cython.locals(s=Session, idx=ExpiryIndex, q=dict, dues=list, keys=list)
    cpdef _advance(self, app, wm)
    @cython.locals(s=Session, idx=ExpiryIndex)
    cpdef _evict(self, app)
    cpdef _drop(self, Session s)
    cpdef dict _window(self, dict shared, Session s, str window, at=*)
    @cython.locals(key=tuple)
    cpdef _close(self, Session s, state, ending=*, bint keep=*)
    cpdef _unwait(self, Session s)
