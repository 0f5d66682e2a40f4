/*
 * harness.c - throwaway PostgreSQL, processes and probes for integration tests (see
 * harness.h). Written for clarity over speed; every wait has a deadline and, on failure,
 * says what it waited for.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "bus.h"
#include "harness.h"
#include "health.h"

int64_t
h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The scratch dir h_tmpdir made, and the process that made it: only that process removes it
 * (a forked child that calls exit() must not). h_done records the test's result; until it is
 * called the dir counts as failed, so a test that never reports keeps its dir.
 */
static char h_dir[200];
static pid_t h_dir_owner;
static int h_result = -1;

static int launcher(const char *script, const char *const args[], char *const env[], char *out, size_t outlen);
static void h_pg_cleanup(void);

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT) {
		fprintf(stderr, "harness: removing %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Every process svc started under the dir that has not ended yet (a .pid without its .rc):
 * stopped through svc, which waits for the rc file, so nothing writes into the dir as it goes. */
static void
stop_leftovers(void)
{
	char pat[300], out[64];
	glob_t g;

	snprintf(pat, sizeof(pat), "%s/*.pid", h_dir);
	if (glob(pat, 0, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char name[128];
		const char *b = strrchr(g.gl_pathv[i], '/') + 1;
		snprintf(name, sizeof(name), "%.*s", (int)(strlen(b) - 4), b);
		const char *args[] = { "stop", h_dir, name, "KILL", NULL };
		(void)launcher(CS_SVC, args, NULL, out, sizeof(out));
	}
	globfree(&g);
}

/*
 * atexit, registered before h_pg_cleanup, so it runs after it. A passing test's dir goes; a
 * failing one's (or any, with CS_TEST_KEEP set) stays and is named. Before removing, it stops
 * what may still write there (svc's processes, the cluster again: both harmless twice) and
 * removes nothing while the cluster's pid file is there.
 */
static void
h_tmpdir_cleanup(void)
{
	const char *keep = getenv("CS_TEST_KEEP");
	char pid[300];

	if (h_dir[0] == '\0' || getpid() != h_dir_owner)
		return;
	if (h_result != 0 || (keep != NULL && keep[0] != '\0' && strcmp(keep, "0") != 0)) {
		fprintf(stderr, "harness: kept %s (%s)\n", h_dir, h_result == 0 ? "CS_TEST_KEEP is set" :
		    h_result < 0 ? "no result: h_done was not called" : "test failed");
		return;
	}
	stop_leftovers();
	h_pg_cleanup();
	snprintf(pid, sizeof(pid), "%s/pg/data/postmaster.pid", h_dir);
	if (access(pid, F_OK) == 0) {
		fprintf(stderr, "harness: kept %s (its PostgreSQL did not stop)\n", h_dir);
		return;
	}
	(void)nftw(h_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
h_done(int failed)
{
	h_result = failed;
	return failed;
}

const char *
h_tmpdir(void)
{
	if (h_dir[0] == '\0') {
		const char *t = getenv("TMPDIR");
		snprintf(h_dir, sizeof(h_dir), "%s/crmsync-test-XXXXXX", t ? t : "/tmp");
		if (mkdtemp(h_dir) == NULL) {
			perror("mkdtemp");
			exit(1);
		}
		chmod(h_dir, 0755);
		h_dir_owner = getpid();
		atexit(h_tmpdir_cleanup);
	}
	return h_dir;
}

const char *
h_url(const char *name)
{
	static char urls[8][512];
	static int slot;
	char *u = urls[slot++ % 8];

	snprintf(u, sizeof(urls[0]), "ipc://%s/%s.sock", h_tmpdir(), name);
	return u;
}

int
h_free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Run one of the launchers in tests/harness (testpg, svc, fake: the ones every shell and
 * Python caller uses too) with these arguments and, in its environment, env ("K=V",
 * NULL-terminated, may be NULL); its standard output (a DSN, a URL, an exit status) into
 * out. 0 when it exited 0. */
static int
launcher(const char *script, const char *const args[], char *const env[], char *out, size_t outlen)
{
	int fds[2];
	pid_t pid;
	int st;
	size_t n = 0;
	char *argv[72];
	size_t k = 0;

	argv[k++] = (char *)script;
	for (size_t i = 0; args[i] != NULL && k < 71; i++)
		argv[k++] = (char *)args[i];
	argv[k] = NULL;
	if (pipe(fds) != 0)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		for (int i = 0; env != NULL && env[i] != NULL; i++)
			putenv(env[i]);
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	close(fds[1]);
	for (ssize_t r; pid > 0 && (r = read(fds[0], out + n, outlen - 1 - n)) > 0 && n + (size_t)r < outlen - 1;)
		n += (size_t)r;
	close(fds[0]);
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/*
 * The cluster's directory, kept here for the exit handler: a caller's struct h_pg may live on
 * main's stack, which is gone when atexit handlers run. testpg stop on a cluster that is not
 * running is not an error, so the handler needs no "running" flag.
 */
static char h_pg_exit_dir[sizeof(((struct h_pg *)0)->dir)];

static void
h_pg_cleanup(void)
{
	char out[64];

	if (h_pg_exit_dir[0] == '\0')
		return;
	const char *args[] = { "stop", h_pg_exit_dir, "immediate", NULL };
	(void)launcher(CS_TESTPG, args, NULL, out, sizeof(out));
}

int
h_pg_start(struct h_pg *pg)
{
	memset(pg, 0, sizeof(*pg));
	snprintf(pg->dir, sizeof(pg->dir), "%s/pg", h_tmpdir());
	const char *args[] = { "start", pg->dir, "crmsync", NULL };
	if (launcher(CS_TESTPG, args, NULL, pg->dsn, sizeof(pg->dsn)) != 0 || pg->dsn[0] == '\0') {
		fprintf(stderr, "harness: %s start %s failed\n", CS_TESTPG, pg->dir);
		return -1;
	}
	pg->running = 1;
	if (h_pg_exit_dir[0] == '\0')
		atexit(h_pg_cleanup);
	snprintf(h_pg_exit_dir, sizeof(h_pg_exit_dir), "%s", pg->dir);
	return 0;
}

int
h_pg_stop(struct h_pg *pg, int immediate)
{
	char out[64];

	if (!pg->running)
		return 0;
	pg->running = 0;
	const char *args[] = { "stop", pg->dir, immediate ? "immediate" : "fast", NULL };
	return launcher(CS_TESTPG, args, NULL, out, sizeof(out));
}

int
h_pg_restart(struct h_pg *pg)
{
	char out[64];
	const char *args[] = { "restart", pg->dir, NULL };

	if (launcher(CS_TESTPG, args, NULL, out, sizeof(out)) != 0)
		return -1;
	pg->running = 1;
	return 0;
}

/* The pid tests/harness/svc wrote to <tmpdir>/<name>.pid; 0 or -1. */
static int
read_pid(struct h_proc *p)
{
	char path[600];
	FILE *f;
	long v = 0;

	snprintf(path, sizeof(path), "%s/%s.pid", h_tmpdir(), p->name);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = 0;
	fclose(f);
	p->pid = (pid_t)v;
	return v > 0 ? 0 : -1;
}

/* The exit status svc wrote to <tmpdir>/<name>.rc once the process ended, or -1 while it
 * runs. The process is the launcher's child, not ours: the rc file is how we learn the end. */
static int
read_rc(const struct h_proc *p)
{
	char path[600];
	FILE *f;
	int v = -1;

	snprintf(path, sizeof(path), "%s/%s.rc", h_tmpdir(), p->name);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

int
h_spawn(struct h_proc *p, const char *name, const char *path, char *const env[], char *const argv[])
{
	const char *bd = getenv("CS_BUILD_DIR");
	char bin[1024], out[64];
	const char *args[72];
	int n = 0;

	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->log, sizeof(p->log), "%s/%s.log", h_tmpdir(), name);
	if (path[0] == '/')
		snprintf(bin, sizeof(bin), "%s", path);
	else
		snprintf(bin, sizeof(bin), "%s/%s", bd ? bd : ".", path);
	args[n++] = "run";
	args[n++] = h_tmpdir();
	args[n++] = name;
	args[n++] = bin;
	for (int i = 0; argv != NULL && argv[i] != NULL && n < 71; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	if (launcher(CS_SVC, args, env, out, sizeof(out)) != 0 || read_pid(p) != 0) {
		fprintf(stderr, "harness: %s run %s %s failed\n", CS_SVC, name, bin);
		p->pid = -1;
		return -1;
	}
	return 0;
}

int
h_fake_start(struct h_proc *p, const char *name, const char *kind, char *const argv[], char *url, size_t urllen)
{
	const char *args[72];
	int n = 0;

	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->log, sizeof(p->log), "%s/%s.log", h_tmpdir(), name);
	args[n++] = "start";
	args[n++] = h_tmpdir();
	args[n++] = name;
	args[n++] = kind;
	for (int i = 0; argv != NULL && argv[i] != NULL && n < 71; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	if (launcher(CS_FAKE, args, NULL, url, urllen) != 0 || url[0] == '\0') {
		fprintf(stderr, "harness: %s start %s %s failed\n", CS_FAKE, name, kind);
		read_pid(p);
		h_dump_log(p);
		h_kill(p, SIGKILL);
		return -1;
	}
	if (read_pid(p) != 0 || strrchr(url, ':') == NULL)
		return -1;
	return (int)strtol(strrchr(url, ':') + 1, NULL, 10);
}

int
h_alive(struct h_proc *p)
{
	if (p->pid <= 0)
		return 0;
	if (read_rc(p) >= 0) {
		p->pid = -1;
		return 0;
	}
	return 1;
}

int
h_wait_exit(struct h_proc *p, int64_t timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;
	int rc;

	while (p->pid > 0 && h_now_ms() < end) {
		if ((rc = read_rc(p)) >= 0) {
			p->pid = -1;
			return rc;
		}
		nng_msleep(10);
	}
	return -1;
}

int
h_kill(struct h_proc *p, int sig)
{
	int rc;

	if (p->pid <= 0)
		return -1;
	if (read_rc(p) < 0)
		kill(p->pid, sig);
	/* Give a graceful stop 20 s, then force. */
	if ((rc = h_wait_exit(p, 20000)) >= 0)
		return rc;
	kill(p->pid, SIGKILL);
	h_wait_exit(p, 5000);
	p->pid = -1;
	return -1;
}

void
h_dump_log(const struct h_proc *p)
{
	char line[4096];
	FILE *f = fopen(p->log, "r");

	fprintf(stderr, "---- log of %s (%s) ----\n", p->name, p->log);
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
	fprintf(stderr, "---- end of %s ----\n", p->name);
}

int
h_wait_health(const char *url, int timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;

	while (h_now_ms() < end) {
		Crmsync__Envelope *env = NULL;
		if (health_probe(url, 500, &env) == 0) {
			bus_free(env);
			return 0;
		}
		nng_msleep(20);
	}
	fprintf(stderr, "harness: no health answer from %s within %d ms\n", url, timeout_ms);
	return -1;
}

int
h_wait_ready(const char *url, int timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;
	char last[256] = "no answer";

	while (h_now_ms() < end) {
		Crmsync__Envelope *env = NULL;
		if (health_probe(url, 500, &env) == 0) {
			int ok = env->health_response->ok;
			snprintf(last, sizeof(last), "%s", env->health_response->status);
			bus_free(env);
			if (ok)
				return 0;
		}
		nng_msleep(20);
	}
	fprintf(stderr, "harness: %s not ready within %d ms (last status: %s)\n", url, timeout_ms, last);
	return -1;
}

int
h_wait_sql(PGconn *c, const char *sql, const char *want, int timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;
	const char *got = NULL;

	while (h_now_ms() < end) {
		got = h_sql(c, sql);
		if (got != NULL && strcmp(got, want) == 0)
			return 0;
		nng_msleep(50);
	}
	fprintf(stderr, "harness: waited %d ms for [%s] = %s, last %s\n", timeout_ms, sql, want,
	    got ? got : "(error)");
	return -1;
}

PGconn *
h_connect(const struct h_pg *pg)
{
	PGconn *c = PQconnectdb(pg->dsn);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "harness: connect: %s\n", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

const char *
h_sql(PGconn *c, const char *sql)
{
	static char out[8192];
	PGresult *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "harness: SQL failed: %s: %s", sql, PQresultErrorMessage(r));
		PQclear(r);
		if (PQstatus(c) != CONNECTION_OK)
			PQreset(c);
		return NULL;
	}
	if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0))
		snprintf(out, sizeof(out), "%s", PQntuples(r) < 1 ? "(none)" : "(null)");
	else
		snprintf(out, sizeof(out), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

int64_t
h_sql_int(PGconn *c, const char *sql)
{
	const char *v = h_sql(c, sql);

	return v != NULL ? strtoll(v, NULL, 10) : -1;
}

int
h_sql_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "harness: SQL failed: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}
