#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro Swift cannot import: SQLite copies the bytes.
static inline sqlite3_destructor_type dna_sqlite_transient(void) { return (sqlite3_destructor_type)-1; }
