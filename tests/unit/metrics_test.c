/*
 * metrics_test.c - the Prometheus exposition (names, types, escaping, duplicates, limit)
 * and the HTTP endpoint itself: a real GET over TCP to a server on a free port, 404 for
 * other paths, address parsing, "off" when empty, and a busy port reported, not fatal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "metrics.h"
#include "version.h"

static struct stat_counter stats[] = {
	{ "rows_written", "rows inserted, changed or deleted", 0, 0 },
	{ "db_up", "1 when connected to PostgreSQL", 1, 0 },
	{ "odd-name.x", "help with \\ backslash\nand newline", 0, 0 },
	{ "rows_written", "a duplicate: ignored", 0, 0 },
	{ "retries_total", NULL, 0, 0 },
	{ "up", "would clash with crmsync_up", 1, 0 },
	/* one family of labelled samples, e.g. the store's refused deletions per entity */
	{ "deletions_refused{crm=\"amo\",entity=\"users\"}", "deletions refused", 0, 0 },
	{ "deletions_refused{crm=\"hollihop\",entity=\"students\"}", "deletions refused", 0, 0 },
};
#define NSTATS (sizeof(stats) / sizeof(stats[0]))

static void
test_render(void **state)
{
	struct buf b;

	(void)state;
	stat_set(&stats[0], 1234);
	stat_set(&stats[1], 1);
	stat_set(&stats[2], -7);
	stat_set(&stats[4], 5);
	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(&b, "st\"ore", stats, NSTATS, 42), 0);
	assert_non_null(strstr(b.data,
	    "# HELP crmsync_rows_written_total rows inserted, changed or deleted\n"
	    "# TYPE crmsync_rows_written_total counter\n"
	    "crmsync_rows_written_total{service=\"st\\\"ore\"} 1234\n"));
	assert_non_null(strstr(b.data,
	    "# TYPE crmsync_db_up gauge\ncrmsync_db_up{service=\"st\\\"ore\"} 1\n"));
	/* Sanitised name, escaped HELP. */
	assert_non_null(strstr(b.data, "# HELP crmsync_odd_name_x_total help with \\\\ backslash\\nand newline\n"));
	assert_non_null(strstr(b.data, "crmsync_odd_name_x_total{service=\"st\\\"ore\"} -7\n"));
	/* No double suffix; a missing help falls back to the name. */
	assert_non_null(strstr(b.data, "# HELP crmsync_retries_total retries_total\n"));
	assert_non_null(strstr(b.data, "crmsync_retries_total{service=\"st\\\"ore\"} 5\n"));
	/* Labelled samples: one HELP/TYPE, one line per label set. */
	assert_non_null(strstr(b.data,
	    "# TYPE crmsync_deletions_refused_total counter\n"
	    "crmsync_deletions_refused_total{service=\"st\\\"ore\",crm=\"amo\",entity=\"users\"} 0\n"
	    "crmsync_deletions_refused_total{service=\"st\\\"ore\",crm=\"hollihop\",entity=\"students\"} 0\n"));
	/* Built-ins. */
	assert_non_null(strstr(b.data, "crmsync_up{service=\"st\\\"ore\"} 1\n"));
	assert_non_null(strstr(b.data, "crmsync_uptime_seconds{service=\"st\\\"ore\"} 42\n"));
	assert_non_null(strstr(b.data, "crmsync_build_info{service=\"st\\\"ore\",version=\"" CRMSYNC_VERSION "\"} 1\n"));
	/* Each family once: the duplicate stat and the one named "up" add nothing. */
	assert_null(strstr(strstr(b.data, "# TYPE crmsync_rows_written_total") + 1, "# TYPE crmsync_rows_written_total"));
	assert_null(strstr(strstr(b.data, "# TYPE crmsync_up ") + 1, "# TYPE crmsync_up "));
	assert_null(strstr(b.data, "would clash"));
	/* Every line is a comment or a sample "name{labels} value". */
	for (char *line = b.data, *nl; *line != '\0'; line = nl + 1) {
		assert_non_null(nl = strchr(line, '\n'));
		if (line[0] == '#')
			continue;
		assert_true(strncmp(line, "crmsync_", 8) == 0);
		assert_non_null(memchr(line, '}', (size_t)(nl - line)));
	}
	buf_free(&b);

	/* Without uptime; and a buffer too small fails cleanly. */
	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(&b, "x", NULL, 0, -1), 0);
	assert_null(strstr(b.data, "uptime"));
	buf_free(&b);
	buf_init(&b, 100);
	assert_int_equal(metrics_render(&b, "x", stats, NSTATS, 1), CS_ETOOBIG);
	buf_free(&b);
}

/* Two histograms of one family (per crm), between other stats: one HELP/TYPE, no _total. */
static struct stat_counter hist[] = {
	{ "db_up", "1 when connected", 1, 0 },
	{ "run_duration_seconds_bucket{crm=\"amo\",le=\"1\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "run_duration_seconds_bucket{crm=\"amo\",le=\"10\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "run_duration_seconds_bucket{crm=\"amo\",le=\"+Inf\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "run_duration_seconds_sum{crm=\"amo\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "run_duration_seconds_count{crm=\"amo\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "run_duration_seconds_bucket{crm=\"hollihop\",le=\"1\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "run_duration_seconds_bucket{crm=\"hollihop\",le=\"10\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "run_duration_seconds_bucket{crm=\"hollihop\",le=\"+Inf\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "run_duration_seconds_sum{crm=\"hollihop\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "run_duration_seconds_count{crm=\"hollihop\"}", "run durations", STAT_HISTOGRAM, 0 },
	{ "runs", "runs", 0, 0 },
};

static void
test_histogram(void **state)
{
	const double bounds[] = { 1, 10 };
	struct buf b;

	(void)state;
	metrics_observe(&hist[1], bounds, 2, 0.25);
	metrics_observe(&hist[1], bounds, 2, 4.5);
	metrics_observe(&hist[1], bounds, 2, 99);
	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(&b, "store", hist, sizeof(hist) / sizeof(hist[0]), -1), 0);
	assert_non_null(strstr(b.data,
	    "# HELP crmsync_run_duration_seconds run durations\n"
	    "# TYPE crmsync_run_duration_seconds histogram\n"
	    "crmsync_run_duration_seconds_bucket{service=\"store\",crm=\"amo\",le=\"1\"} 1\n"
	    "crmsync_run_duration_seconds_bucket{service=\"store\",crm=\"amo\",le=\"10\"} 2\n"
	    "crmsync_run_duration_seconds_bucket{service=\"store\",crm=\"amo\",le=\"+Inf\"} 3\n"
	    "crmsync_run_duration_seconds_sum{service=\"store\",crm=\"amo\"} 103.750\n"
	    "crmsync_run_duration_seconds_count{service=\"store\",crm=\"amo\"} 3\n"
	    "crmsync_run_duration_seconds_bucket{service=\"store\",crm=\"hollihop\",le=\"1\"} 0\n"));
	assert_non_null(strstr(b.data, "crmsync_run_duration_seconds_sum{service=\"store\",crm=\"hollihop\"} 0.000\n"));
	/* One header for the family; the stats around it keep theirs. */
	assert_null(strstr(strstr(b.data, "# TYPE crmsync_run_duration_seconds ") + 1, "# TYPE crmsync_run_duration_seconds "));
	assert_null(strstr(b.data, "_bucket_total"));
	assert_non_null(strstr(b.data, "# TYPE crmsync_runs_total counter\ncrmsync_runs_total{service=\"store\"} 0\n"));
	buf_free(&b);
}

static void
scrape_hook(void *arg)
{
	stat_set(arg, 77);
}

/* One HTTP/1.1 request with Connection: close; the whole answer into out. */
static int
http_get(int port, const char *path, char *out, size_t cap)
{
	struct sockaddr_in a;
	char req[256];
	size_t n = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return -1;
	}
	for (int i = 0; i < 100 && n + 1 < cap; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 5000) != 1)
			break;
		if ((r = read(fd, out + n, cap - 1 - n)) <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	close(fd);
	return (int)n;
}

static void
test_http(void **state)
{
	struct metrics *m = NULL, *m2 = NULL;
	char resp[65536];

	(void)state;
	assert_int_equal(metrics_start(&m, "127.0.0.1:0", "store", stats, NSTATS), 0);
	assert_non_null(m);
	assert_true(metrics_port(m) > 0);
	stat_set(&stats[0], 99);
	assert_true(http_get(metrics_port(m), "/metrics", resp, sizeof(resp)) > 0);
	assert_non_null(strstr(resp, "HTTP/1.1 200"));
	assert_non_null(strstr(resp, "text/plain; version=0.0.4"));
	assert_non_null(strstr(resp, "crmsync_rows_written_total{service=\"store\"} 99\n"));
	/* Live values: the next scrape sees the change. */
	stat_add(&stats[0], 1);
	assert_true(http_get(metrics_port(m), "/metrics", resp, sizeof(resp)) > 0);
	assert_non_null(strstr(resp, "crmsync_rows_written_total{service=\"store\"} 100\n"));
	assert_true(http_get(metrics_port(m), "/other", resp, sizeof(resp)) > 0);
	assert_non_null(strstr(resp, "HTTP/1.1 404"));

	/* The same port again: an error for the caller, not a crash. */
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", metrics_port(m));
	metrics_stop(m);
	/* After stop the port is free again and can be re-used. */
	assert_int_equal(metrics_start(&m, addr, "store", stats, NSTATS), 0);
	assert_non_null(m);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t al = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	assert_int_equal(listen(fd, 1), 0);
	snprintf(addr, sizeof(addr), "http://127.0.0.1:%d", ntohs(a.sin_port));
	assert_int_equal(metrics_start(&m2, addr, "store", stats, NSTATS), CS_ENNG);
	assert_null(m2);
	close(fd);
	metrics_stop(m);
	metrics_stop(NULL);
}

static void
test_addresses(void **state)
{
	struct metrics *m = (struct metrics *)&m;

	(void)state;
	assert_int_equal(metrics_start(&m, "", "store", stats, NSTATS), 0);
	assert_null(m);
	assert_int_equal(metrics_start(&m, NULL, "store", stats, NSTATS), 0);
	assert_null(m);
	assert_int_equal(metrics_port(NULL), -1);
	const char *bad[] = { "9101", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:70000",
	    "127.0.0.1:-1", "::1:9101", "[::1]9101", "http://127.0.0.1:9101/metrics" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(metrics_start(&m, bad[i], "store", stats, NSTATS), CS_EINVAL);
		assert_null(m);
	}
	/* ":0" listens on every interface; loopback reaches it. */
	char resp[65536];
	assert_int_equal(metrics_start(&m, ":0", "gw", stats, NSTATS), 0);
	assert_true(http_get(metrics_port(m), "/metrics", resp, sizeof(resp)) > 0);
	assert_non_null(strstr(resp, "crmsync_up{service=\"gw\"} 1\n"));
	metrics_stop(m);

	/* A scrape first calls the service's hook: the gauge it sets is what is served. */
	assert_int_equal(metrics_start(&m, "127.0.0.1:0", "gw", stats, NSTATS), 0);
	metrics_on_scrape(m, scrape_hook, &stats[1]);
	assert_true(http_get(metrics_port(m), "/metrics", resp, sizeof(resp)) > 0);
	assert_non_null(strstr(resp, "crmsync_db_up{service=\"gw\"} 77\n"));
	metrics_stop(m);
	stat_set(&stats[1], 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_http),
		cmocka_unit_test(test_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
