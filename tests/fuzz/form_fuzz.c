/*
 * form_fuzz.c - libFuzzer target for the hook gateway's form parser (services/hook-gateway/form.c).
 *
 * The first byte picks the limits (defaults, tiny limits, or a tiny arena) so the limit and
 * out-of-memory paths get fuzzed too; the rest is the body. Whatever form_parse accepts must
 * hold up: every string UTF-8, every event named, and the delivery packs and unpacks to the
 * same shape. Build: cmake -DCS_FUZZ=ON -DCMAKE_C_COMPILER=clang; run: form_fuzz corpus/
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "form.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_str(const char *s)
{
	if (s == NULL || !form_utf8_valid((const unsigned char *)s, strlen(s)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct form_limits lim = FORM_LIMITS_DEFAULT;
	Crmsync__HookDelivery d = CRMSYNC__HOOK_DELIVERY__INIT, *u;
	struct arena a;
	char err[160];
	uint8_t *buf;
	size_t n, asize;
	int mode = 0;

	if (size > 0) {
		mode = data[0] % 4;
		data++;
		size--;
	}
	if (mode == 1)
		lim = (struct form_limits){ 8, 2, 24, 2 };
	asize = form_arena_size(size, &lim);
	if (mode == 2)
		asize = 4096;
	arena_init(&a, asize);
	if (form_parse((const char *)data, size, &lim, &a, &d, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort();	/* every failure says why */
		arena_free(&a);
		return 0;
	}
	check_str(d.subdomain);
	if (d.n_events > lim.max_events)
		abort();
	for (size_t i = 0; i < d.n_events; i++) {
		const Crmsync__HookEvent *e = d.events[i];
		check_str(e->entity);
		check_str(e->action);
		check_str(e->uid);
		check_str(e->element_type);
		if (e->entity[0] == '\0')
			abort();
	}
	n = crmsync__hook_delivery__get_packed_size(&d);
	buf = malloc(n + 1);
	crmsync__hook_delivery__pack(&d, buf);
	u = crmsync__hook_delivery__unpack(NULL, n, buf);
	if (u == NULL || u->n_events != d.n_events || strcmp(u->subdomain, d.subdomain) != 0)
		abort();
	for (size_t i = 0; i < d.n_events; i++)
		if (u->events[i]->id != d.events[i]->id ||
		    strcmp(u->events[i]->uid, d.events[i]->uid) != 0)
			abort();
	crmsync__hook_delivery__free_unpacked(u, NULL);
	free(buf);
	arena_free(&a);
	return 0;
}
