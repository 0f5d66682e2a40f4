/*
 * schedule.c - when the nightly export starts: a local wall-clock time ("03:30") in the
 * configured zone (TZ is set at start-up, so localtime/mktime speak that zone). mktime
 * normalises the day roll-over and DST gaps.
 */
#include <string.h>
#include <time.h>

#include "errors.h"
#include "hh.h"

int
schedule_parse(const char *s, int *minute)
{
	*minute = -1;
	if (s == NULL || *s == '\0' || strcmp(s, "off") == 0)
		return 0;
	if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9' ||
	    s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
		return CS_EINVAL;
	int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 23)
		return CS_EINVAL;
	*minute = h * 60 + m;
	return 0;
}

time_t
schedule_next(time_t now, int minute)
{
	struct tm tm;
	time_t t;

	if (minute < 0 || localtime_r(&now, &tm) == NULL)
		return (time_t)-1;
	for (int day = 0; day < 3; day++) {
		struct tm x = tm;
		x.tm_mday += day;
		x.tm_hour = minute / 60;
		x.tm_min = minute % 60;
		x.tm_sec = 0;
		x.tm_isdst = -1;
		if ((t = mktime(&x)) != (time_t)-1 && t > now)
			return t;
	}
	return (time_t)-1;
}
