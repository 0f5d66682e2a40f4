/*
 * tmpdir_probe - a stand-in for an integration test's main, for tmpdir_test.sh: makes the
 * harness's scratch dir, leaves a process running in it (as a careless test would) and
 * reports the result given as argv[1] through h_done. Prints "DIR PID" of the dir and of
 * that process, so the caller can check what the exit handler did with both.
 */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

int
main(int argc, char **argv)
{
	struct h_proc p;
	char *const args[] = { "300", NULL };

	if (argc != 2 || h_spawn(&p, "sleeper", "/bin/sleep", NULL, args) != 0)
		return 2;
	printf("%s %d\n", h_tmpdir(), (int)p.pid);
	fflush(stdout);
	return h_done(atoi(argv[1]));
}
