/*
 * fuzz_ctl_parse.c - libFuzzer target for the control socket's command
 * parser (vmm/ctl.c: ctl_parse, with config_parse_size underneath) and the
 * client's reply check (ctl_reply_is_error).
 *
 * Input: one command line, as the server hands it over: the bytes up to the
 * first NUL or newline (at most CTL_MAX_LINE of them), NUL-terminated.
 *
 * Checks: ctl_parse returns 0 or -1; a failure has a one-line reason (no
 * newline, fits err); a success names a known command, a resize has a valid
 * device id (or none), and printing it back as "resize [ID] <bytes>B" parses
 * to the same command.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/ctl.h"
#include "tests/fuzz/common/input.h"

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n >= CTL_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static void check_err(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);
    FUZZ_CHECK(n > 0 && n < errlen, "error message of %zu bytes", n);
    FUZZ_CHECK(strchr(err, '\n') == NULL, "multi-line error: %s", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char line[CTL_MAX_LINE + 1];
    char err[512], again[CTL_ID_MAX + 64];
    struct ctl_command cmd, cmd2;

    size_t n = strnlen((const char *)data, size < CTL_MAX_LINE ? size : CTL_MAX_LINE);
    memcpy(line, data, n);
    line[n] = '\0';
    line[strcspn(line, "\n")] = '\0'; /* the server splits lines at newlines */

    memset(err, 0, sizeof(err));
    int r = ctl_parse(line, &cmd, err, sizeof(err));
    FUZZ_CHECK(r == 0 || r == -1, "ctl_parse returned %d", r);
    if (r < 0) {
        check_err(err, sizeof(err));
    } else {
        FUZZ_CHECK(cmd.op == CTL_STATUS || cmd.op == CTL_RESIZE || cmd.op == CTL_SHUTDOWN ||
                       cmd.op == CTL_DUMP,
                   "op %d", cmd.op);
        if (cmd.op == CTL_RESIZE) {
            FUZZ_CHECK(valid_id(cmd.id), "device id '%s'", cmd.id);
            snprintf(again, sizeof(again), "resize %s %lluB", cmd.id, (unsigned long long)cmd.size);
            FUZZ_CHECK(ctl_parse(again, &cmd2, err, sizeof(err)) == 0, "'%s' refused: %s", again,
                       err);
            FUZZ_CHECK(cmd2.op == CTL_RESIZE && cmd2.size == cmd.size &&
                           strcmp(cmd2.id, cmd.id) == 0,
                       "'%s' parsed differently", again);
        }
    }
    uint64_t bytes;
    config_parse_size(line, 1, &bytes);
    ctl_reply_is_error(line);
    return 0;
}
