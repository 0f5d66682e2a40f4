/* svc.c - shared start-up of the crmsync services (see svc.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "svc.h"
#include "version.h"

volatile _Atomic int svc_stop;
volatile _Atomic int svc_reload;

static void
svc_usage(FILE *f, const struct svc_desc *d)
{
	fprintf(f, "usage: crmsync-%s [-hnvV]", d->name);
	for (size_t i = 0; i < d->nflags; i++)
		fprintf(f, " [%s%s%s]", d->flags[i].name, d->flags[i].arg ? " " : "",
		    d->flags[i].arg ? d->flags[i].arg : "");
	fprintf(f, "\n\n%s\n\nOptions:\n", d->summary);
	fprintf(f, "  -h, --help      show this help\n"
	    "  -n, --check     check the configuration, print it (secrets as ***) and exit\n"
	    "  -v, --verbose   debug logging\n"
	    "  -V, --version   print the version\n");
	for (size_t i = 0; i < d->nflags; i++) {
		char opt[64];

		/* the same column as the options above: "  -h, --help      show..." */
		snprintf(opt, sizeof(opt), "%s%s%s", d->flags[i].name, d->flags[i].arg ? " " : "",
		    d->flags[i].arg ? d->flags[i].arg : "");
		fprintf(f, "  %-15s %s\n", opt, d->flags[i].help);
	}
	fputc('\n', f);
	cfg_usage(f, d->keys, d->nkeys);
}

void
svc_init(int argc, char **argv, const struct svc_desc *d)
{
	int check = 0, verbose = 0;
	char err[512];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		size_t k;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			svc_usage(stdout, d);
			exit(0);
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("crmsync-%s %s\n", d->name, CRMSYNC_VERSION);
			exit(0);
		} else if (strcmp(a, "-n") == 0 || strcmp(a, "--check") == 0) {
			check = 1;
			continue;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			verbose = 1;
			continue;
		}
		for (k = 0; k < d->nflags; k++) {
			if (strcmp(a, d->flags[k].name) != 0)
				continue;
			if (d->flags[k].arg != NULL) {
				if (i + 1 >= argc) {
					fprintf(stderr, "crmsync-%s: %s needs an argument (%s)\n",
					    d->name, a, d->flags[k].arg);
					exit(2);
				}
				if (d->flags[k].value != NULL)
					*d->flags[k].value = argv[++i];
				else
					i++;
			}
			if (d->flags[k].set != NULL)
				*d->flags[k].set = 1;
			break;
		}
		if (k == d->nflags) {
			fprintf(stderr, "crmsync-%s: unknown option %s (try --help)\n", d->name, a);
			exit(2);
		}
	}
	log_init(d->name, verbose);
	if (cfg_load(d->keys, d->nkeys, d->conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "crmsync-%s: configuration error: %s\n", d->name, err);
		exit(2);
	}
	if (check) {
		cfg_print(stdout, d->keys, d->nkeys, d->conf);
		printf("configuration OK\n");
		exit(0);
	}
}

static void
svc_onsignal(int sig)
{
	(void)sig;
	svc_stop = 1;
}

void
svc_on_stop_signals(void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void
svc_signals(void)
{
	struct sigaction sa;

	svc_on_stop_signals(svc_onsignal);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
}

static void
svc_onhup(int sig)
{
	(void)sig;
	svc_reload = 1;
}

void
svc_reload_signal(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = svc_onhup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
}
