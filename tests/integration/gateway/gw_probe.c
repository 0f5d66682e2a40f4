/*
 * gw_probe.c - ask a crmsync service's health responder (lib/health) and print the answer,
 * for test scripts: `gw_probe URL` prints status and every stat as name=value lines;
 * `gw_probe URL NAME` prints only that stat's value. Exit 0 when the service answered.
 */
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "errors.h"
#include "health.h"
#include "log.h"

int
main(int argc, char **argv)
{
	Crmsync__Envelope *env = NULL;
	Crmsync__HealthResponse *r;
	int rv;

	if (argc < 2) {
		fprintf(stderr, "usage: gw_probe URL [STAT]\n");
		return 2;
	}
	log_init("gw-probe", 0);
	if ((rv = health_probe(argv[1], 1000, &env)) != 0) {
		fprintf(stderr, "gw_probe: %s: %s\n", argv[1], cs_strerror(rv));
		return 1;
	}
	r = env->health_response;
	if (argc > 2) {
		for (size_t i = 0; i < r->n_stats; i++)
			if (strcmp(r->stats[i]->name, argv[2]) == 0) {
				printf("%lld\n", (long long)r->stats[i]->value);
				bus_free(env);
				return 0;
			}
		fprintf(stderr, "gw_probe: no stat %s\n", argv[2]);
		bus_free(env);
		return 1;
	}
	printf("service=%s ok=%d status=\"%s\" uptime_s=%lld\n", r->service, r->ok, r->status,
	    (long long)r->uptime_s);
	for (size_t i = 0; i < r->n_stats; i++)
		printf("%s=%lld\n", r->stats[i]->name, (long long)r->stats[i]->value);
	bus_free(env);
	return 0;
}
