// The PostgreSQL store lands here.
