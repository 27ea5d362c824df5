#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro Swift cannot import: SQLite copies the bytes.
static inline sqlite3_destructor_type dna_sqlite_transient(void) { return (sqlite3_destructor_type)-1; }

// Turns off SQLite's memory statistics, which take a global mutex on every allocation.
// Effective only before SQLite initialises; harmless (SQLITE_MISUSE) after.
static inline int dna_sqlite_disable_memory_statistics(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }
