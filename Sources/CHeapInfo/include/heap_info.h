#include <stddef.h>

/// Bytes of heap in use according to malloc (glibc mallinfo2), or 0 where unknown.
size_t dna_heap_bytes_in_use(void);
