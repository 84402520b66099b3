# Compiled layout of Session (Cython "pure Python mode": session.py stays the definition and runs as is
# without Cython). Compiled modules that cimport this read and write the fields as C struct members; Python
# code sees the same attributes. Field types are those session.py stores; `object` where a value may be
# None or of more than one type, so nothing is converted on the way in or out.

cdef class Session:
    cdef public str kind
    cdef public str appliance
    cdef public object ident
    cdef public tuple key
    cdef public object first_ts
    cdef public object last_ts
    cdef public dict data
    cdef public str raw
    cdef public object seqs
    cdef public Session conn
    cdef public list mids
    cdef public object finished_ts
    cdef public object closed_ts
    cdef public object lost_ts
    cdef public str state
    cdef public long emitted
    cdef public long unrecognized
    cdef public long bucket
    cdef public bint open
    cdef public long nlines
