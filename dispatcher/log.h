/*
 * log — one line per notable event on stderr, with a time and a level:
 * "2026-11-25T14:20:00.123Z info listening on 127.0.0.1:7420".
 */
#ifndef DISPATCHD_LOG_H
#define DISPATCHD_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int log_level; /* messages above this level are dropped */

void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Log at LOG_ERROR and abort: for the impossible and for out-of-memory
   where no caller can recover. */
void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
