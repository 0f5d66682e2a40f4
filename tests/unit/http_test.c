/*
 * http_test.c - the libcurl client both sync services use (lib/http), against a small
 * HTTP/1.1 server on loopback run by a thread of this test: what a request carries, the
 * headers a caller reads (Retry-After in seconds and as an HTTP-date, X-Request-Id,
 * Content-Type), statuses that are not errors, bodies over the limit (with and without
 * Content-Length), timeouts, a refused connection, keep-alive, redirects not followed, and
 * percent-encoding.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "errors.h"
#include "http.h"

/* The server: answers every request with `reply` (or never, when hang is set). */
static struct {
	int			 lfd;
	int			 port;
	pthread_t		 thr;
	volatile _Atomic int	 stop;
	volatile _Atomic int	 hang;
	volatile _Atomic int	 accepts;
	const char		*reply;
	size_t			 replylen;
	pthread_mutex_t		 mtx;
	char			 last[8192];	/* the last request: head and body */
} srv;

/* Read one request (head, then Content-Length bytes of body) into srv.last; -1 at EOF. */
static int
read_request(int fd)
{
	char req[8192];
	size_t n = 0;
	char *end = NULL;

	while (end == NULL) {
		ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		req[n] = '\0';
		end = strstr(req, "\r\n\r\n");
		if (end == NULL && n == sizeof(req) - 1)
			return -1;
	}
	const char *cl = strcasestr(req, "\r\nContent-Length:");
	size_t want = (size_t)(end + 4 - req) + (cl != NULL ? strtoul(cl + 17, NULL, 10) : 0);
	while (n < want && n < sizeof(req) - 1) {
		ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			return -1;
		n += (size_t)r;
	}
	req[n] = '\0';
	pthread_mutex_lock(&srv.mtx);
	memcpy(srv.last, req, n + 1);
	pthread_mutex_unlock(&srv.mtx);
	return 0;
}

static void
serve(int fd)
{
	while (!atomic_load(&srv.stop) && read_request(fd) == 0) {
		while (atomic_load(&srv.hang) && !atomic_load(&srv.stop))
			usleep(10 * 1000);
		if (write(fd, srv.reply, srv.replylen) != (ssize_t)srv.replylen)
			return;
	}
}

static void *
server_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&srv.stop)) {
		int fd = accept(srv.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		if (atomic_load(&srv.stop)) {
			close(fd);
			break;
		}
		atomic_fetch_add(&srv.accepts, 1);
		serve(fd);
		close(fd);
	}
	return NULL;
}

static int
setup(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	(void)state;
	memset(&srv, 0, sizeof(srv));
	pthread_mutex_init(&srv.mtx, NULL);
	srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(srv.lfd >= 0);
	assert_int_equal(bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(srv.lfd, 8), 0);
	assert_int_equal(getsockname(srv.lfd, (struct sockaddr *)&a, &al), 0);
	srv.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&srv.thr, NULL, server_main, NULL), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	atomic_store(&srv.stop, 1);
	/* Wake the accept: one connection that the server closes at once. */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	(void)connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	pthread_join(srv.thr, NULL);
	close(srv.lfd);
	pthread_mutex_destroy(&srv.mtx);
	return 0;
}

static void
reply_with(const char *r)
{
	srv.reply = r;
	srv.replylen = strlen(r);
}

static const char *
url(const char *path)
{
	static char u[128];

	snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", srv.port, path);
	return u;
}

static void
test_request_and_response(void **state)
{
	struct http *h;
	struct http_response r;
	const char *hdrs[] = { "Authorization: Bearer t0k", "Content-Type: application/json", NULL };

	(void)state;
	reply_with("HTTP/1.1 200 OK\r\nContent-Type: application/hal+json\r\n"
	    "X-Request-Id: req-5150\r\nContent-Length: 11\r\n\r\n{\"ok\":true}");
	assert_int_equal(http_new(&h, NULL), 0);
	assert_int_equal(http_request(h, "POST", url("/api/v4/leads?page=2"), hdrs, "{\"a\":1}", 7, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 11);
	assert_memory_equal(r.body.data, "{\"ok\":true}", 11);
	assert_string_equal(r.request_id, "req-5150");
	assert_string_equal(r.content_type, "application/hal+json");
	assert_int_equal(r.retry_after_s, -1);
	http_response_free(&r);
	pthread_mutex_lock(&srv.mtx);
	assert_non_null(strstr(srv.last, "POST /api/v4/leads?page=2 HTTP/1.1\r\n"));
	assert_non_null(strstr(srv.last, "\r\nAuthorization: Bearer t0k\r\n"));
	assert_non_null(strstr(srv.last, "\r\nUser-Agent: crmsync/"));
	assert_non_null(strstr(srv.last, "\r\n\r\n{\"a\":1}"));
	pthread_mutex_unlock(&srv.mtx);
	http_free(h);
}

/* A status is never an error here; Retry-After is read for the caller. */
static void
test_status_and_retry_after(void **state)
{
	struct http *h;
	struct http_response r;

	(void)state;
	reply_with("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Type: text/html\r\n"
	    "Content-Length: 5\r\n\r\nslow!");
	assert_int_equal(http_new(&h, NULL), 0);
	assert_int_equal(http_request(h, "GET", url("/x"), NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 429);
	assert_int_equal(r.retry_after_s, 7);
	http_response_free(&r);
	/* A redirect is answered as it is, not followed. */
	reply_with("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(http_request(h, "GET", url("/y"), NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 302);
	http_response_free(&r);
	http_free(h);
}

/* Retry-After's two forms (RFC 9110 10.2.3) as seconds from now; unreadable is -1. */
static void
test_retry_after_seconds_and_http_dates(void **state)
{
	time_t now = 784111777;		/* Sun, 06 Nov 1994 08:49:37 GMT */

	(void)state;
	assert_int_equal(http_retry_after("120", now), 120);
	assert_int_equal(http_retry_after("0", now), 0);
	assert_int_equal(http_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now - 30), 30);
	assert_int_equal(http_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now - 5), 5);
	assert_int_equal(http_retry_after("Sun Nov  6 08:49:37 1994", now - 7), 7);
	assert_int_equal(http_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now + 60), 0);	/* past */
	assert_int_equal(http_retry_after("soon", now), -1);
	assert_int_equal(http_retry_after("12abc", now), -1);
	assert_int_equal(http_retry_after("", now), -1);
	assert_int_equal(http_retry_after("99999999999999999999999", now), -1);
}

/*
 * amoCRM's 429: an nginx HTML body (never parsed) and a Retry-After that may be an
 * HTTP-date (issue 10 item 7): its delay reaches the caller; it was read as absent (-1).
 */
static void
test_429_with_an_http_date_and_an_html_body(void **state)
{
	static const char html[] = "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n"
	    "<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
	    "</body>\r\n</html>\r\n";
	static char reply[1024];
	struct http *h;
	struct http_response r;
	char date[64];
	time_t at = time(NULL) + 5;
	struct tm tm;

	(void)state;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&at, &tm));
	snprintf(reply, sizeof(reply), "HTTP/1.1 429 Too Many Requests\r\nServer: nginx\r\n"
	    "Content-Type: text/html\r\nRetry-After: %s\r\nContent-Length: %zu\r\n\r\n%s",
	    date, strlen(html), html);
	reply_with(reply);
	assert_int_equal(http_new(&h, NULL), 0);
	assert_int_equal(http_request(h, "GET", url("/api/v4/leads"), NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 429);
	assert_int_equal(r.body.len, strlen(html));
	assert_in_range(r.retry_after_s, 3, 5);
	http_response_free(&r);
	http_free(h);
}

/* Bodies over max_body fail with CS_ETOOBIG, announced or not. */
static void
test_body_limit(void **state)
{
	struct http *h;
	struct http_response r;
	struct http_opts o = { .max_body = 1024 };
	static char big[4096 + 256];

	(void)state;
	int n = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n");
	memset(big + n, 'x', 4096);
	big[n + 4096] = '\0';
	reply_with(big);
	assert_int_equal(http_new(&h, &o), 0);
	assert_int_equal(http_request(h, "GET", url("/big"), NULL, NULL, 0, &r), CS_ETOOBIG);
	http_response_free(&r);
	http_free(h);
	/* Chunked: no length up front, the limit applies as bytes arrive. */
	n = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n");
	memset(big + n, 'y', 4096);
	snprintf(big + n + 4096, sizeof(big) - (size_t)n - 4096, "\r\n0\r\n\r\n");
	reply_with(big);
	assert_int_equal(http_new(&h, &o), 0);
	assert_int_equal(http_request(h, "GET", url("/big2"), NULL, NULL, 0, &r), CS_ETOOBIG);
	http_response_free(&r);
	http_free(h);
}

static void
test_timeout(void **state)
{
	struct http *h;
	struct http_response r;
	struct http_opts o = { .timeout_ms = 300 };

	(void)state;
	reply_with("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	atomic_store(&srv.hang, 1);
	assert_int_equal(http_new(&h, &o), 0);
	assert_int_equal(http_request(h, "GET", url("/slow"), NULL, NULL, 0, &r), CS_ETIMEDOUT);
	assert_true(r.error[0] != '\0');
	http_response_free(&r);
	http_free(h);
	atomic_store(&srv.hang, 0);
}

static void
test_refused(void **state)
{
	struct http *h;
	struct http_response r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	char u[64];

	(void)state;
	/* A port that was just free and that nobody listens on. */
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(a.sin_port));
	assert_int_equal(http_new(&h, NULL), 0);
	assert_int_equal(http_request(h, "GET", u, NULL, NULL, 0, &r), CS_ENET);
	assert_true(r.error[0] != '\0');
	http_response_free(&r);
	http_free(h);
	close(fd);
}

/* One handle keeps its connection between requests. */
static void
test_keep_alive(void **state)
{
	struct http *h;
	struct http_response r;

	(void)state;
	reply_with("HTTP/1.1 204 No Content\r\n\r\n");
	assert_int_equal(http_new(&h, NULL), 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(http_request(h, "GET", url("/k"), NULL, NULL, 0, &r), 0);
		assert_int_equal(r.status, 204);
		assert_int_equal(r.body.len, 0);
		http_response_free(&r);
	}
	assert_int_equal(atomic_load(&srv.accepts), 1);
	http_free(h);
}

static void
test_urlencode(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1024);
	assert_int_equal(http_urlencode(&b, "a b/ц~-._&=+"), 0);
	assert_int_equal(buf_add(&b, "", 1), 0);
	assert_string_equal(b.data, "a%20b%2F%D1%86~-._%26%3D%2B");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_and_response, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_and_retry_after, setup, teardown),
		cmocka_unit_test(test_retry_after_seconds_and_http_dates),
		cmocka_unit_test_setup_teardown(test_429_with_an_http_date_and_an_html_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
		cmocka_unit_test(test_urlencode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
