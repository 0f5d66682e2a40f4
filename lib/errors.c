/* errors.c - strings for the codes in errors.def. */
#include "errors.h"

static const char *const cs_errstr[] = {
	[CS_OK] = "ok",
#define ERR(name, text) [CS_E##name] = text,
#include "errors.def"
#undef ERR
};

const char *
cs_strerror(int err)
{
	if (err < 0 || err >= CS_E_MAX)
		return "unknown error";
	return cs_errstr[err];
}
