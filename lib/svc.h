/*
 * svc.h - what every service's main() shares: command-line flags (--help lists every
 * environment variable, -n checks the configuration, -v verbose, -V version), config
 * loading through lib/cfg, and SIGINT/SIGTERM turned into a stop flag.
 */
#ifndef CS_SVC_H
#define CS_SVC_H

#include <signal.h>
#include <stddef.h>

#include "cfg.h"

/* A service-specific flag: "--full" (no argument) or "--auth-code CODE". */
struct svc_flag {
	const char	*name;	/* with the dashes */
	const char	*arg;	/* NULL = no argument; else the argument's name for --help */
	const char	*help;
	int		*set;	/* set to 1 when given (may be NULL) */
	const char	**value;/* receives the argument (may be NULL) */
};

struct svc_desc {
	const char		*name;	/* "store" */
	const char		*summary;
	const struct cfg_key	*keys;
	size_t			 nkeys;
	void			*conf;
	const struct svc_flag	*flags;
	size_t			 nflags;
};

/* Set by SIGINT/SIGTERM. */
extern volatile _Atomic int svc_stop;	/* lock-free: the signal handler sets it */

/*
 * Parse argv, initialise logging, load the config. Exits 0 after --help, -V and -n, and
 * exits 2 with a clear message on a bad flag or a bad configuration value.
 */
void	svc_init(int argc, char **argv, const struct svc_desc *d);
/* SIGINT and SIGTERM call fn (no SA_RESTART): the one place both are set up. */
void	svc_on_stop_signals(void (*fn)(int));
void	svc_signals(void);
/* Set by SIGHUP once svc_reload_signal() installed it (else SIGHUP keeps its default,
 * ending the process); the service takes it with atomic_exchange(&svc_reload, 0). */
extern volatile _Atomic int svc_reload;
void	svc_reload_signal(void);

#endif
