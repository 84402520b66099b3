# Compiled-mode declarations (Cython pure Python mode): Session fields as C struct members.
from enricher.core.sessions.session cimport Session
