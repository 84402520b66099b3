# Compiled layout of Session (Cython "pure Python mode": session.py stays the definition and runs as is
# without Cython). Compiled modules that cimport this read and write the fields as C struct members; Python
# code sees the same attributes. Field types are those session.py stores; `object` where a value may be
# None or of more than one type, so nothing is converted on the way in or out.

cimport cython

cdef unsigned long long _SEQ_MASK
cdef unsigned long long _SPREAD
cdef object _pack_key


@cython.locals(p='const unsigned char*', k='const unsigned char*', n=Py_ssize_t, i=Py_ssize_t)
cpdef Py_ssize_t _find_key(hs, bytes key, Py_ssize_t start) except -2


@cython.locals(na=Py_ssize_t, nb=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t, out=list)
cpdef list _in_order(unsigned int[:] sa, list la, unsigned int[:] sb, list lb)


cdef class Session:
    cdef public str kind
    cdef public str appliance
    cdef public object ident
    cdef public tuple key
    # Never None, compared on every line: C doubles (a float object per field and session no longer kept).
    cdef public double first_ts
    cdef public double last_ts
    cdef public dict data
    cdef public str raw
    cdef public object seqs
    cdef public Session conn
    cdef public list mids
    cdef public object finished_ts
    cdef public object closed_ts
    cdef public object lost_ts
    cdef public str state
    cdef public long bucket
    cdef public long emitted
    cdef public long unrecognized
    cdef public long nlines
    # The two flags side by side (declaration order is the struct's layout: apart, each took 8 bytes with
    # its padding, and the object crossed into a larger allocator size class).
    cdef public bint open
    cdef public bint late
    cdef public object hashes
    cdef public str last_kind
    cdef public dict ending
    cdef public object written_ts

    cpdef add_line(self, Py_ssize_t seq, line)
    cpdef Session view(self)
    @cython.locals(i=Py_ssize_t, j=Py_ssize_t, lines=list)
    cpdef bint repeats(self, bytes key, str raw, level)


cpdef unsigned int body_sum(str raw, level)
@cython.locals(sec=cython.ulonglong)
cpdef bytes sum_key(unsigned int body, double ts)
cpdef bytes line_key(str raw, level, ts)
cpdef unsigned int _body_sum(ev)
cpdef bytes _line_key(ev, double ts)
@cython.locals(hs=object)
cpdef bint _repeated(Session s, bytes lk, ev)
