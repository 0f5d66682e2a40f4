/*
 * harness.h - what crmsync's integration tests share: a throwaway PostgreSQL cluster,
 * service processes started from the build tree, waiting for readiness by probing (never
 * by sleeping a fixed time), and small SQL helpers for assertions.
 *
 * Every piece is started by the same launcher the shell tests and the Python callers use
 * (tests/harness/README.md): tests/harness/testpg for the cluster (a fresh temp dir, a unix
 * socket only, fsync off, stopped at exit; as root, initdb/pg_ctl run as the `postgres` user
 * through runuser), tests/harness/fake for the fake CRMs, tests/harness/svc for the services
 * and any other process. A process so started is the launcher's child, not the test's: its
 * end is read from the <tmpdir>/<name>.rc file svc writes, never with waitpid.
 */
#ifndef CS_HARNESS_H
#define CS_HARNESS_H

#include <stdint.h>
#include <sys/types.h>
#include <libpq-fe.h>

struct h_pg {
	char	dir[512];	/* temp dir: data/, socket, log */
	char	dsn[640];	/* host=<dir> port=5432 dbname=crmsync user=postgres */
	int	running;
};

struct h_proc {
	pid_t	pid;
	char	name[64];
	char	log[512];	/* stdout+stderr of the process */
};

/* Start a cluster and create database crmsync. Returns 0 or -1 (message on stderr). */
int	h_pg_start(struct h_pg *pg);
int	h_pg_stop(struct h_pg *pg, int immediate);
int	h_pg_restart(struct h_pg *pg);	/* start again on the same data dir */

/*
 * A unique scratch dir for the test ($TMPDIR/crmsync-test-XXXXXX). At exit, after its cluster
 * and the processes started in it are stopped, it is removed if h_done(0) was called; kept,
 * with one line on stderr naming it, if the test failed or never called h_done, or if
 * CS_TEST_KEEP is set (not "0").
 */
const char *h_tmpdir(void);
/* The test's result for the exit handler: `return h_done(cmocka_run_group_tests(...));`. */
int	h_done(int failed);
/* "ipc:///<tmpdir>/<name>.sock": a private NNG address. */
const char *h_url(const char *name);
/* A free TCP port on 127.0.0.1. */
int	h_free_port(void);

/*
 * Start a program (tests/harness/svc run) with extra environment (NULL-terminated "K=V" list)
 * and arguments (NULL-terminated). The binary is looked up in $CS_BUILD_DIR/<path> unless path
 * is absolute. Output goes to <tmpdir>/<name>.log, appended to.
 */
int	h_spawn(struct h_proc *p, const char *name, const char *path, char *const env[], char *const argv[]);
/*
 * Start the fake CRM kind ("amocrm", "hollihop") with these arguments after --port 0
 * (tests/harness/fake start): listening when this returns its port, its base URL
 * ("http://127.0.0.1:PORT") in url. -1 on failure (its log printed).
 */
int	h_fake_start(struct h_proc *p, const char *name, const char *kind, char *const argv[], char *url, size_t urllen);
int	h_kill(struct h_proc *p, int sig);	/* signal and reap; returns exit status or -1 */
int	h_alive(struct h_proc *p);
/* Wait for p to exit on its own: its exit status (128+signal if killed), or -1 after timeout_ms. */
int	h_wait_exit(struct h_proc *p, int64_t timeout_ms);
void	h_dump_log(const struct h_proc *p);	/* print the process log to stderr */
/* Wait until the NNG health responder at url answers; 0 or -1 after timeout_ms. */
int	h_wait_health(const char *url, int timeout_ms);
/* Wait until the health responder at url reports ok (the service is ready, not just up). */
int	h_wait_ready(const char *url, int timeout_ms);
/* Wait until `sql` (a query returning one value) returns `want`; 0 or -1. */
int	h_wait_sql(PGconn *c, const char *sql, const char *want, int timeout_ms);

PGconn	*h_connect(const struct h_pg *pg);
/* First column of the first row as text (static buffer), or NULL on error (printed). */
const char *h_sql(PGconn *c, const char *sql);
int64_t	h_sql_int(PGconn *c, const char *sql);
int	h_sql_exec(PGconn *c, const char *sql);

int64_t	h_now_ms(void);

#endif
