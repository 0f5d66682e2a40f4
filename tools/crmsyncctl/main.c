/*
 * main.c - crmsyncctl: the operator's one command (status, probe, sync, resync, runs,
 * deadletters, rederive, report, catalog).
 *
 * It reads the same CS_* variables as the services, with the same defaults, so it runs
 * unchanged next to them (same env file, same container). Commands live one per file;
 * this file parses argv, loads the configuration, and holds the two small commands
 * (probe, catalog). Exit codes: 0 ok, 1 not ok (down, failed, refused), 2 usage.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "catalog.h"
#include "cfg.h"
#include "ctl.h"
#include "errors.h"
#include "log.h"
#include "version.h"

struct ctl_conf ctl;

#define CFG_STRUCT struct ctl_conf

static const struct cfg_key ctl_keys[] = {
	CFG_KEY("CS_STORE_HEALTH_URL", CFG_STR, store_health, "tcp://127.0.0.1:7711", 0, 0,
	  "health responder of crmsync-store"),
	CFG_KEY("CS_GATEWAY_HEALTH_URL", CFG_STR, gateway_health, "tcp://127.0.0.1:7311", 0, 0,
	  "health responder of crmsync-hook-gateway"),
	CFG_KEY("CS_AMO_HEALTH_URL", CFG_STR, amo_health, "tcp://127.0.0.1:7712", 0, 0,
	  "health responder of crmsync-amo-sync"),
	CFG_KEY("CS_HOLLIHOP_HEALTH_URL", CFG_STR, hollihop_health, "tcp://127.0.0.1:7713", 0, 0,
	  "health responder of crmsync-hollihop-sync"),
	CFG_KEY("CS_AMO_URL", CFG_STR, amo_url, "tcp://127.0.0.1:7702", 0, 0,
	  "where amo-sync takes SyncCommand (crmsyncctl sync amo)"),
	CFG_KEY("CS_HOLLIHOP_URL", CFG_STR, hollihop_url, "tcp://127.0.0.1:7703", 0, 0,
	  "where hollihop-sync takes SyncCommand (crmsyncctl sync hollihop)"),
	CFG_KEY("CS_STORE_URL", CFG_STR, store_url, "tcp://127.0.0.1:7701", 0, 0,
	  "where the store takes RederiveRequest and DeadLetterRequest (crmsyncctl rederive, deadletters)"),
	CFG_KEY("CS_PG_DSN", CFG_SECRET, pg_dsn, "", 0, 0,
	  "libpq connection string; when set, status, sync, resync, runs and deadletters read crmsync.* tables"),
	CFG_KEY("CS_CTL_PG_DSN", CFG_SECRET, ctl_dsn, "", 0, 0,
	  "used instead of CS_PG_DSN when set (e.g. the read-only analyst role)"),
	CFG_KEY("CS_CTL_TIMEOUT", CFG_DURATION, timeout_ms, "1s", 50, 60000,
	  "how long a health probe waits for its answer"),
	CFG_KEY("CS_CTL_COMMAND_TIMEOUT", CFG_DURATION, command_timeout_ms, "90s", 100, 3600000,
	  "how long `sync` waits for the service to accept the command"),
};

const struct ctl_service ctl_services[4] = {
	{ "hook-gateway", &ctl.gateway_health },
	{ "amo-sync", &ctl.amo_health },
	{ "hollihop-sync", &ctl.hollihop_health },
	{ "store", &ctl.store_health },
};

/* Each command's lines of the help; `crmsyncctl CMD --help` prints its own. */
static const struct ctl_help {
	const char	*name;
	const char	*text;
	int		 own_help;	/* the command prints a longer --help itself */
} ctl_help[] = {
	{ "status",
	    "  status [-v]                 every service at once (up/down, version, uptime, backlog,\n"
	    "                              status, last error; -v: every stat); with a DSN also the\n"
	    "                              last successful sync per CRM and entity and recent runs.\n"
	    "                              Exit 0 only when all are healthy.\n", 0 },
	{ "probe",
	    "  probe [--live] [-q] URL|SERVICE\n"
	    "                              one health probe (container HEALTHCHECK): exit 0 when it\n"
	    "                              answers healthy (--live: answers at all), else 1. SERVICE\n"
	    "                              is store, hook-gateway, amo-sync or hollihop-sync.\n", 0 },
	{ "sync",
	    "  sync hollihop|amo [--full] [--entities a,b] [--no-wait]\n"
	    "                              start a run (incremental unless --full) and show its\n"
	    "                              progress until it ends; exit 0 when it completed.\n"
	    "                              Ctrl-C stops watching, not the run.\n", 0 },
	{ "resync",
	    "  resync amo|hollihop ENTITY [--no-wait]\n"
	    "                              a full read of one entity as its own run (trigger resync),\n"
	    "                              followed to its end with rows read/written/deleted; its\n"
	    "                              rows stay readable meanwhile; only a complete read deletes\n"
	    "                              what vanished; a failed or cut one deletes nothing.\n", 0 },
	{ "rederive",
	    "  rederive amo|hollihop [ENTITY...] [--no-wait]\n"
	    "                              re-derive typed columns and child rows from the raw JSON\n"
	    "                              the store holds (no CRM request), as a run; follow it\n"
	    "                              until it ends; exit 0 when it completed.\n", 0 },
	{ "report",
	    "  report [--out FILE] [--since YYYY-MM] [--pipeline ID] [--text] [--only LIST]\n"
	    "                              one self-contained HTML page of the analytics schema:\n"
	    "                              funnel, revenue per channel and manager, group fill,\n"
	    "                              teacher hours (report --help for more)\n", 1 },
	{ "runs",
	    "  runs [--crm C] [--entity E] [--status S] [--since 2h|3d|2026-12-01] [--limit N]\n"
	    "                              the history of sync runs, newest first (default 20): kind,\n"
	    "                              trigger, entities, start, duration, status, rows written/\n"
	    "                              unchanged/deleted, the error's first line. Needs a DSN.\n", 0 },
	{ "deadletters",
	    "  deadletters list [--crm C] [--entity E] [--all]\n"
	    "                              what the store kept because it could not apply it (open\n"
	    "                              ones; --all: resubmitted and discarded too)\n"
	    "  deadletters show ID         one, with its reason and its payload as readable JSON\n"
	    "  deadletters resubmit ID...  after a fix: the store applies the dead-lettered batch\n"
	    "                              again through its normal path (rows older than the stored\n"
	    "                              ones change nothing; its cursor is not applied). A row the\n"
	    "                              CRM sent unreadable is read again by resync instead.\n"
	    "  deadletters discard ID... --reason TEXT\n"
	    "                              close them, kept with who, why and when\n", 0 },
	{ "catalog",
	    "  catalog ddl [amo|hollihop]  the CREATE TABLE statements generated from the catalogue\n"
	    "  catalog list [amo|hollihop] every entity: table, endpoint, description\n", 0 },
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: crmsyncctl <command> [arguments]\n"
	    "\n"
	    "Operate crmsync: ask the services how they are, start syncs, print the schema.\n"
	    "\n"
	    "Commands (crmsyncctl COMMAND --help: that one alone):\n");
	for (size_t i = 0; i < sizeof(ctl_help) / sizeof(ctl_help[0]); i++)
		fputs(ctl_help[i].text, f);
	fprintf(f,
	    "  help, -h, --help            this text\n"
	    "  version, -V, --version      the version\n"
	    "\n");
	cfg_usage(f, ctl_keys, CFG_NKEYS(ctl_keys));
}

/* `crmsyncctl CMD --help`: CMD's lines of the help; 0, or -1 when CMD is no command or
 * prints its own longer help. */
static int
usage_cmd(const char *cmd)
{
	int found = 0;

	for (size_t i = 0; i < sizeof(ctl_help) / sizeof(ctl_help[0]); i++) {
		if (strcmp(cmd, ctl_help[i].name) != 0)
			continue;
		if (ctl_help[i].own_help)
			return -1;
		if (!found)
			printf("usage:\n");
		fputs(ctl_help[i].text, stdout);
		found = 1;
	}
	if (found && (strcmp(cmd, "status") == 0 || strcmp(cmd, "sync") == 0 || strcmp(cmd, "resync") == 0 ||
	    strcmp(cmd, "rederive") == 0 || strcmp(cmd, "runs") == 0 || strcmp(cmd, "deadletters") == 0))
		printf("\nWith CS_CTL_PG_DSN (or CS_PG_DSN) set it reads crmsync.* (a read-only role is enough);\n"
		    "crmsyncctl --help lists every variable.\n");
	return found ? 0 : -1;
}

static const char *
service_url(const char *name)
{
	static const struct { const char *alias, *name; } aliases[] = {
		{ "gateway", "hook-gateway" }, { "amo", "amo-sync" }, { "hollihop", "hollihop-sync" },
	};

	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(name, aliases[i].alias) == 0)
			name = aliases[i].name;
	for (size_t i = 0; i < sizeof(ctl_services) / sizeof(ctl_services[0]); i++)
		if (strcmp(name, ctl_services[i].name) == 0 ||
		    (strncmp(name, "crmsync-", 8) == 0 && strcmp(name + 8, ctl_services[i].name) == 0))
			return *ctl_services[i].health_url;
	return NULL;
}

static int
cmd_probe(int argc, char **argv)
{
	struct ctl_probe p = { 0 };
	const Crmsync__HealthResponse *h;
	int live = 0, quiet = 0, ok;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--live") == 0)
			live = 1;
		else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0)
			quiet = 1;
		else if (p.url == NULL && argv[i][0] != '-')
			p.url = argv[i];
		else {
			fprintf(stderr, "crmsyncctl: probe: unexpected argument \"%s\"\n", argv[i]);
			return 2;
		}
	}
	if (p.url == NULL) {
		fprintf(stderr, "usage: crmsyncctl probe [--live] [-q] URL|SERVICE\n");
		return 2;
	}
	if (strstr(p.url, "://") == NULL) {
		const char *u = service_url(p.url);
		if (u == NULL) {
			fprintf(stderr, "crmsyncctl: probe: \"%s\" is neither a URL nor a service name\n", p.url);
			return 2;
		}
		p.name = p.url;
		p.url = u;
	}
	ctl_probe_all(&p, 1, (int)ctl.timeout_ms);
	if (p.rv != 0) {
		if (!quiet)
			printf("down: %s: %s\n", p.url, ctl_probe_error(p.rv, (int)ctl.timeout_ms));
		return 1;
	}
	h = p.env->health_response;
	ok = live || h->ok;
	if (!quiet)
		printf("%s: %s %s up %llds: %s\n", h->ok ? "ok" : "degraded", h->service, h->version,
		    (long long)h->uptime_s, h->status != NULL ? h->status : "");
	ctl_probe_free(&p, 1);
	return ok ? 0 : 1;
}

static int
cmd_catalog(int argc, char **argv)
{
	const enum cat_crm all[] = { CAT_AMO, CAT_HOLLIHOP };
	int ddl, rv = 0;
	struct buf b;

	if (argc < 2 || argc > 3 || (strcmp(argv[1], "ddl") != 0 && strcmp(argv[1], "list") != 0)) {
		fprintf(stderr, "usage: crmsyncctl catalog ddl|list [amo|hollihop]\n");
		return 2;
	}
	if (argc == 3 && strcmp(argv[2], "amo") != 0 && strcmp(argv[2], "hollihop") != 0) {
		fprintf(stderr, "crmsyncctl: catalog: unknown CRM \"%s\" (amo or hollihop)\n", argv[2]);
		return 2;
	}
	ddl = strcmp(argv[1], "ddl") == 0;
	buf_init(&b, 16u << 20);
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		const struct cat_crm_desc *d = catalog_crm(all[k]);

		if (argc == 3 && strcmp(argv[2], d->schema) != 0)
			continue;
		if (ddl)
			printf("-- crmsync %s: tables generated from the %s catalogue (lib/catalog_%s.c)\n"
			    "CREATE SCHEMA IF NOT EXISTS %s;\n\n", CRMSYNC_VERSION, d->schema, d->schema, d->schema);
		for (size_t i = 0; i < d->nentities; i++) {
			const struct cat_entity *e = &d->entities[i];

			if (!ddl) {
				printf("%-9s %-30s %-40s %s\n", d->schema, e->name, e->endpoint,
				    e->doc != NULL ? e->doc : "");
				continue;
			}
			buf_reset(&b);
			if ((rv = catalog_ddl(e, d->schema, &b)) != 0) {
				fprintf(stderr, "crmsyncctl: catalog: %s.%s: %s\n", d->schema, e->name, cs_strerror(rv));
				break;
			}
			printf("%s\n", b.data);
		}
		if (rv != 0)
			break;
	}
	buf_free(&b);
	return rv == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "help";
	char err[512];
	int rv;

	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		usage(stdout);
		return argc > 1 ? 0 : 2;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
		printf("crmsyncctl %s\n", CRMSYNC_VERSION);
		return 0;
	}
	if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) &&
	    usage_cmd(cmd) == 0)
		return 0;
	log_init("crmsyncctl", 0);
	if (cfg_load(ctl_keys, CFG_NKEYS(ctl_keys), &ctl, err, sizeof(err)) != 0) {
		fprintf(stderr, "crmsyncctl: configuration error: %s\n", err);
		return 2;
	}
	if (strcmp(cmd, "status") == 0) {
		int verbose = argc > 2 && (strcmp(argv[2], "-v") == 0 || strcmp(argv[2], "--verbose") == 0);
		if (argc > 2 + verbose) {
			fprintf(stderr, "usage: crmsyncctl status [-v]\n");
			rv = 2;
		} else {
			rv = ctl_status(verbose);
		}
	} else if (strcmp(cmd, "probe") == 0) {
		rv = cmd_probe(argc - 1, argv + 1);
	} else if (strcmp(cmd, "sync") == 0) {
		rv = ctl_sync(argc - 1, argv + 1);
	} else if (strcmp(cmd, "resync") == 0) {
		rv = ctl_resync(argc - 1, argv + 1);
	} else if (strcmp(cmd, "runs") == 0) {
		rv = ctl_runs(argc - 1, argv + 1);
	} else if (strcmp(cmd, "deadletters") == 0) {
		rv = ctl_deadletters(argc - 1, argv + 1);
	} else if (strcmp(cmd, "rederive") == 0) {
		rv = ctl_rederive(argc - 1, argv + 1);
	} else if (strcmp(cmd, "report") == 0) {
		rv = ctl_report(argc - 1, argv + 1);
	} else if (strcmp(cmd, "catalog") == 0) {
		rv = cmd_catalog(argc - 1, argv + 1);
	} else {
		fprintf(stderr, "crmsyncctl: unknown command \"%s\" (try crmsyncctl --help)\n", cmd);
		rv = 2;
	}
	cfg_free(ctl_keys, CFG_NKEYS(ctl_keys), &ctl);
	return rv;
}
