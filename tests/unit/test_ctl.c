/*
 * Unit tests for the control socket (vmm/ctl.c, vmm/ctl_client.c): the
 * command parser, the server driven through a real event loop and real unix
 * sockets in one process, and the `minivmm ctl` client run in a forked child
 * while the parent pumps the server.  No KVM needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/ctl.h"
#include "vmm/util.h"

#define COMMANDS "status, resize [ID] SIZE, dump, shutdown"
#define STATUS_REPLY                                                                               \
    "{\"state\": \"running\", \"devices\": [{\"id\": \"mem0\", \"size\": 1073741824}]}"
#define TOO_LONG                                                                                   \
    "{\"error\": \"command line too long (more than 4096 bytes); send one command per line\"}"
#define WAIT_NS (5ULL * 1000000000ULL) /* how long a test waits for a reply */

/* ---- parser ------------------------------------------------------------- */

static void parse_ok(const char *line, enum ctl_op op, const char *id, uint64_t size)
{
    struct ctl_command cmd;
    char err[256] = "";

    if (ctl_parse(line, &cmd, err, sizeof(err)) != 0)
        fail_msg("'%s' was refused: %s", line, err);
    assert_int_equal(cmd.op, op);
    assert_string_equal(cmd.id, id);
    assert_int_equal(cmd.size, size);
}

static void parse_err(const char *line, const char *want)
{
    struct ctl_command cmd;
    char err[256] = "";

    if (ctl_parse(line, &cmd, err, sizeof(err)) == 0)
        fail_msg("'%s' was accepted", line);
    assert_string_equal(err, want);
}

static void test_parse_ok(void **state)
{
    (void)state;
    parse_ok("status", CTL_STATUS, "", 0);
    parse_ok("  status \t ", CTL_STATUS, "", 0);
    parse_ok("\tstatus", CTL_STATUS, "", 0);
    parse_ok("shutdown", CTL_SHUTDOWN, "", 0);
    parse_ok("dump", CTL_DUMP, "", 0);
    parse_ok("resize 4G", CTL_RESIZE, "", 4 * GiB);
    parse_ok("resize 4096", CTL_RESIZE, "", 4096); /* bytes without a suffix */
    parse_ok("resize 1.5G", CTL_RESIZE, "", 3 * GiB / 2);
    parse_ok("resize 0", CTL_RESIZE, "", 0);
    parse_ok("resize mem0 1536M", CTL_RESIZE, "mem0", 1536 * MiB);
    parse_ok("  resize   Mem-1.a_B \t 0x1000  ", CTL_RESIZE, "Mem-1.a_B", 0x1000);

    char line[200];
    char id[CTL_ID_MAX];
    memset(id, 'i', CTL_ID_MAX - 1);
    id[CTL_ID_MAX - 1] = '\0';
    snprintf(line, sizeof(line), "resize %s 1G", id); /* the longest id */
    parse_ok(line, CTL_RESIZE, id, GiB);
}

static void test_parse_errors(void **state)
{
    (void)state;
    parse_err("", "empty command; commands: " COMMANDS);
    parse_err(" \t ", "empty command; commands: " COMMANDS);
    parse_err("stat", "unknown command 'stat'; commands: " COMMANDS);
    parse_err("help me", "unknown command 'help'; commands: " COMMANDS);
    parse_err("STATUS", "unknown command 'STATUS'; commands are lower case: " COMMANDS);
    parse_err("Resize 4G", "unknown command 'Resize'; commands are lower case: " COMMANDS);
    parse_err("status now", "status takes no arguments; remove 'now'");
    parse_err("shutdown -f", "shutdown takes no arguments; remove '-f'");
    parse_err("dump all", "dump takes no arguments; remove 'all'");
    parse_err("DUMP", "unknown command 'DUMP'; commands are lower case: " COMMANDS);
    parse_err("resize", "resize needs a size, e.g. resize 4G or resize ID 4G");
    parse_err("resize   ", "resize needs a size, e.g. resize 4G or resize ID 4G");
    parse_err("resize mem0 4G extra", "too many words for resize ('extra'); use resize [ID] SIZE");
    parse_err("resize a b c d e", "too many words for resize ('c'); use resize [ID] SIZE");
    parse_err("resize 4X", "'4X' is not a size (e.g. 4G, 1536M)");
    parse_err("resize -1", "'-1' is not a size (e.g. 4G, 1536M)");
    parse_err("resize 16E", "'16E' is too large for a size (e.g. 4G, 1536M)"); /* 2^64 */
    parse_err("resize 99999999999999999999", "'99999999999999999999' is too large for a size "
                                             "(e.g. 4G, 1536M)");
    parse_err("resize 99999999999999999999X", "'99999999999999999999X' is not a size (e.g. 4G, "
                                              "1536M)");
    /* The size given before the id. */
    parse_err("resize 4G mem0", "the device id comes before the size: resize mem0 4G");
    parse_err("resize 4G 4X", "'4X' is not a size (e.g. 4G, 1536M)");
    parse_err("resize mem0", "'mem0' is not a size (e.g. 4G, 1536M)");
    parse_err("resize mem0 lots", "'lots' is not a size (e.g. 4G, 1536M)");
    parse_err("resize mem/0 4G", "'mem/0' is not a device id (1 to 63 characters of A-Z, a-z, "
                                 "0-9, '_', '.', '-')");
    parse_err("resize m\xc3\xa9m 4G", "'m\xc3\xa9m' is not a device id (1 to 63 characters of "
                                      "A-Z, a-z, 0-9, '_', '.', '-')");
}

static void test_parse_long_words(void **state)
{
    (void)state;
    char line[300], want[300];
    char id[CTL_ID_MAX + 1];

    /* An id of CTL_ID_MAX characters is one too many; quotes are cut at 40 bytes. */
    memset(id, 'i', CTL_ID_MAX);
    id[CTL_ID_MAX] = '\0';
    snprintf(line, sizeof(line), "resize %s 1G", id);
    snprintf(want, sizeof(want),
             "'%.40s...' is not a device id (1 to 63 characters of A-Z, a-z, 0-9, '_', '.', "
             "'-')",
             id);
    parse_err(line, want);

    /* A cut never falls inside a UTF-8 character: 39 ASCII bytes, then 'é' (2 bytes). */
    char utf[80];
    memset(utf, 'u', 39);
    strcpy(utf + 39, "\xc3\xa9\xc3\xa9");
    snprintf(line, sizeof(line), "resize %s 1G", utf);
    snprintf(want, sizeof(want),
             "'%.39s...' is not a device id (1 to 63 characters of A-Z, a-z, 0-9, '_', '.', "
             "'-')",
             utf);
    parse_err(line, want);

    /* A size word too long for any size. */
    char size[120];
    memset(size, '1', sizeof(size) - 1);
    size[sizeof(size) - 1] = '\0';
    snprintf(line, sizeof(line), "resize %s", size);
    snprintf(want, sizeof(want), "'%.40s...' is not a size (e.g. 4G, 1536M)", size);
    parse_err(line, want);

    /* A small error buffer truncates, never overflows. */
    struct ctl_command cmd;
    char err[8];
    assert_int_equal(ctl_parse("bogus", &cmd, err, sizeof(err)), -1);
    assert_string_equal(err, "unknown");
}

/* ---- server fixture ----------------------------------------------------- */

struct fake {
    int status_calls, resize_calls, shutdown_calls;
    bool resize_no_id;
    char resize_id[CTL_ID_MAX];
    uint64_t resize_size;
    bool status_unfinished; /* status leaves its object open */
    size_t status_big;      /* status adds a string of this many bytes */
};

static struct fake fake;

static struct {
    char dir[64];
    char path[128];
    struct evloop loop;
    struct ctl_server srv;
} fx;

static int fake_status(void *opaque, struct json *out, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    assert_ptr_equal(opaque, &fake);
    fake.status_calls++;
    json_object_begin(out);
    json_kv_string(out, "state", "running");
    json_key(out, "devices");
    json_array_begin(out);
    json_object_begin(out);
    json_kv_string(out, "id", "mem0");
    json_kv_u64(out, "size", GiB);
    json_object_end(out);
    json_array_end(out);
    if (fake.status_big) {
        char *big = malloc(fake.status_big + 1);
        assert_non_null(big);
        memset(big, 'b', fake.status_big);
        big[fake.status_big] = '\0';
        json_kv_string(out, "big", big);
        free(big);
    }
    if (!fake.status_unfinished)
        json_object_end(out);
    return 0;
}

static int fake_resize(void *opaque, const char *id, uint64_t size, struct json *out, char *err,
                       size_t errlen)
{
    assert_ptr_equal(opaque, &fake);
    assert_non_null(id);
    fake.resize_calls++;
    if (strcmp(id, "bad") == 0)
        return errf(err, errlen, "no virtio-mem device 'bad'");
    fake.resize_no_id = id[0] == '\0';
    snprintf(fake.resize_id, sizeof(fake.resize_id), "%s", id);
    fake.resize_size = size;
    json_object_begin(out);
    json_kv_string(out, "id", id[0] ? id : "mem0");
    json_kv_u64(out, "requested", size);
    json_object_end(out);
    return 0;
}

/* Writes nothing: the server must reply {}. */
static int fake_shutdown(void *opaque, struct json *out, char *err, size_t errlen)
{
    (void)out;
    (void)err;
    (void)errlen;
    assert_ptr_equal(opaque, &fake);
    fake.shutdown_calls++;
    return 0;
}

static const struct ctl_handlers fake_handlers = {
    .status = fake_status,
    .resize = fake_resize,
    .shutdown = fake_shutdown,
};

static int fx_setup(void **state)
{
    (void)state;
    memset(&fake, 0, sizeof(fake));
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/minivmm-ctl-XXXXXX");
    if (!mkdtemp(fx.dir))
        return -1;
    snprintf(fx.path, sizeof(fx.path), "%s/api.sock", fx.dir);
    if (evloop_init(&fx.loop) < 0)
        return -1;
    memset(&fx.srv, 0, sizeof(fx.srv));
    return 0;
}

/* Tests that want the server running open it here. */
static void fx_open(void)
{
    char err[256] = "";
    if (ctl_server_open(&fx.srv, fx.path, &fx.loop, &fake_handlers, &fake, err, sizeof(err)) < 0)
        fail_msg("ctl_server_open: %s", err);
}

static int fx_teardown(void **state)
{
    char p[200];
    (void)state;
    ctl_server_close(&fx.srv);
    evloop_destroy(&fx.loop);
    snprintf(p, sizeof(p), "%s/api.sock", fx.dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/other", fx.dir);
    unlink(p);
    rmdir(p);
    rmdir(fx.dir);
    return 0;
}

static struct sockaddr_un addr_of(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, path, strlen(path) + 1);
    return addr;
}

static void pump(int rounds)
{
    for (int i = 0; i < rounds; i++)
        assert_true(evloop_run_once(&fx.loop, 10) >= 0);
}

static int cli_connect(void)
{
    struct sockaddr_un addr = addr_of(fx.path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        fail_msg("connect %s: %s", fx.path, strerror(errno));
    pump(1); /* let the server accept */
    return fd;
}

static void cli_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0)
            fail_msg("send: %s", strerror(errno));
        data += n;
        len -= (size_t)n;
    }
}

static int count_lines(const char *s, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '\n';
    return n;
}

/* Pump the server until nlines complete lines arrived on fd; returns them (malloc'd). */
static char *cli_read_lines(int fd, int nlines)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    uint64_t deadline = now_ns() + WAIT_NS;

    assert_non_null(buf);
    while (count_lines(buf, len) < nlines) {
        if (now_ns() > deadline)
            fail_msg("got %d of %d reply lines: '%.*s'", count_lines(buf, len), nlines, (int)len,
                     buf);
        assert_true(evloop_run_once(&fx.loop, 10) >= 0);
        if (cap - len < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
        if (n == 0)
            fail_msg("the server closed the connection after '%.*s'", (int)len, buf);
        if (n > 0)
            len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* Send data, expect exactly want (its lines) back. */
static void cli_expect(int fd, const char *data, const char *want)
{
    cli_send(fd, data, strlen(data));
    char *got = cli_read_lines(fd, count_lines(want, strlen(want)));
    assert_string_equal(got, want);
    free(got);
}

/* Nothing more arrives on fd (the connection is still open). */
static void cli_expect_silence(int fd)
{
    char c;
    pump(3);
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (n >= 0)
        fail_msg("unexpected %s from the server", n ? "data" : "end of file");
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The server closes fd's connection (after any data). */
static void cli_expect_closed(int fd)
{
    char buf[4096];
    uint64_t deadline = now_ns() + WAIT_NS;
    for (;;) {
        assert_true(now_ns() < deadline);
        pump(1);
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return;
    }
}

/* ---- server: commands --------------------------------------------------- */

static void test_server_commands_in_one_write(void **state)
{
    (void)state;
    fx_open();
    int fd = cli_connect();
    cli_expect(fd, "status\nresize 4G\nresize bad 1G\nresize mem1 0x1000\nshutdown\n",
               STATUS_REPLY "\n"
                            "{\"id\": \"mem0\", \"requested\": 4294967296}\n"
                            "{\"error\": \"no virtio-mem device 'bad'\"}\n"
                            "{\"id\": \"mem1\", \"requested\": 4096}\n"
                            "{}\n");
    assert_int_equal(fake.status_calls, 1);
    assert_int_equal(fake.resize_calls, 3);
    assert_int_equal(fake.shutdown_calls, 1);
    assert_false(fake.resize_no_id);
    assert_string_equal(fake.resize_id, "mem1");
    assert_int_equal(fake.resize_size, 4096);

    /* Without an id the handler gets "". */
    cli_expect(fd, "resize 2G\n", "{\"id\": \"mem0\", \"requested\": 2147483648}\n");
    assert_true(fake.resize_no_id);
    assert_string_equal(fake.resize_id, "");
    cli_expect_silence(fd);
    close(fd);
}

static void test_server_byte_by_byte(void **state)
{
    (void)state;
    fx_open();
    int fd = cli_connect();
    const char *cmd = "resize mem0 1536M\r\nsta";
    for (const char *p = cmd; *p; p++) {
        cli_send(fd, p, 1);
        pump(1);
    }
    char *got = cli_read_lines(fd, 1);
    assert_string_equal(got, "{\"id\": \"mem0\", \"requested\": 1610612736}\n");
    free(got);
    assert_int_equal(fake.status_calls, 0); /* "sta" is not a line yet */
    cli_expect(fd, "tus\n", STATUS_REPLY "\n");
    close(fd);
}

static void test_server_blank_lines(void **state)
{
    (void)state;
    fx_open();
    int fd = cli_connect();
    cli_expect(fd, "\n \r\n\t\n\r\nstatus\n", STATUS_REPLY "\n");
    cli_expect_silence(fd);
    close(fd);
}

static void test_server_bad_then_good(void **state)
{
    (void)state;
    fx_open();
    int fd = cli_connect();
    cli_expect(fd, "frobnicate\nresize 4X\nSTATUS\nstatus\n",
               "{\"error\": \"unknown command 'frobnicate'; commands: " COMMANDS "\"}\n"
               "{\"error\": \"'4X' is not a size (e.g. 4G, 1536M)\"}\n"
               "{\"error\": \"unknown command 'STATUS'; commands are lower case: " COMMANDS
               "\"}\n" STATUS_REPLY "\n");
    /* A NUL byte is refused, the line after it still works. */
    cli_send(fd, "sta\0tus\n", 8);
    cli_expect(fd, "status\n",
               "{\"error\": \"the command contains a NUL byte; send text\"}\n" STATUS_REPLY "\n");
    assert_int_equal(fake.status_calls, 2);
    close(fd);
}

/* "status" padded with blanks to len bytes, then end. */
static char *padded_status(size_t len, const char *end)
{
    char *s = malloc(len + strlen(end) + 1);
    assert_non_null(s);
    memcpy(s, "status", 6);
    memset(s + 6, ' ', len - 6);
    strcpy(s + len, end);
    return s;
}

static void test_server_overlong_line(void **state)
{
    (void)state;
    fx_open();
    int fd = cli_connect();

    /* Too long, then a good command on the same connection. */
    size_t n = CTL_MAX_LINE + 10;
    char *junk = malloc(n + 1);
    memset(junk, 'x', n);
    junk[n] = '\0';
    cli_send(fd, junk, n);
    cli_expect(fd, "\nstatus\n", TOO_LONG "\n" STATUS_REPLY "\n");

    /* A huge line sent in pieces gets exactly one error. */
    for (int i = 0; i < 5; i++) {
        cli_send(fd, junk, n);
        pump(1);
    }
    cli_expect(fd, "\nstatus\n", TOO_LONG "\n" STATUS_REPLY "\n");
    cli_expect_silence(fd);
    free(junk);

    /* Exactly CTL_MAX_LINE bytes is fine, with or without \r. */
    char *s = padded_status(CTL_MAX_LINE, "\n");
    cli_expect(fd, s, STATUS_REPLY "\n");
    free(s);
    s = padded_status(CTL_MAX_LINE, "\r\n");
    cli_expect(fd, s, STATUS_REPLY "\n");
    free(s);
    /* One more byte is too long, whether it is seen at the newline or before. */
    s = padded_status(CTL_MAX_LINE + 1, "\n");
    cli_expect(fd, s, TOO_LONG "\n");
    free(s);
    s = padded_status(CTL_MAX_LINE + 1, "\r\nstatus\n");
    cli_expect(fd, s, TOO_LONG "\n" STATUS_REPLY "\n");
    free(s);
    assert_int_equal(fake.status_calls, 5);
    close(fd);
}

static void test_server_many_clients(void **state)
{
    (void)state;
    fx_open();
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = cli_connect();
    /* Interleaved partial lines: each connection keeps its own. */
    for (int i = 0; i < 5; i++)
        cli_send(fds[i], "resize m", 8);
    pump(2);
    for (int i = 4; i >= 0; i--) {
        char line[64], want[128];
        snprintf(line, sizeof(line), "%d %dM\n", i, i + 1);
        snprintf(want, sizeof(want), "{\"id\": \"m%d\", \"requested\": %llu}\n", i,
                 (unsigned long long)(i + 1) * MiB);
        cli_expect(fds[i], line, want);
    }
    assert_int_equal(fx.srv.nr_conns, 5);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    pump(3);
    assert_int_equal(fx.srv.nr_conns, 0);
}

static void test_server_client_goes_away(void **state)
{
    (void)state;
    fx_open();
    /* Closed with a partial line. */
    int fd = cli_connect();
    cli_send(fd, "resi", 4);
    pump(1);
    close(fd);
    pump(2);
    assert_int_equal(fx.srv.nr_conns, 0);
    assert_int_equal(fake.resize_calls, 0);

    /* Closed before reading the replies: the server drops it cleanly. */
    fd = cli_connect();
    cli_send(fd, "status\nstatus\n", 14);
    close(fd);
    pump(3);
    assert_int_equal(fx.srv.nr_conns, 0);

    /* Half-closed: a last line without \n still counts, then the server closes. */
    fd = cli_connect();
    cli_send(fd, "status\nshutdown", 15);
    shutdown(fd, SHUT_WR);
    char *got = cli_read_lines(fd, 2);
    assert_string_equal(got, STATUS_REPLY "\n{}\n");
    free(got);
    cli_expect_closed(fd);
    assert_int_equal(fx.srv.nr_conns, 0);
    assert_int_equal(fake.shutdown_calls, 1);
    close(fd);

    /* The server still serves newcomers. */
    fd = cli_connect();
    cli_expect(fd, "status\n", STATUS_REPLY "\n");
    close(fd);
}

/* A client that sends a flood without reading: served in step, never dropped. */
static void test_server_slow_reader(void **state)
{
    (void)state;
    enum { N = 50000 };
    const size_t cmd_len = 7; /* "status\n" */
    const size_t reply_len = strlen(STATUS_REPLY) + 1;
    char *in = malloc(N * cmd_len);
    for (int i = 0; i < N; i++)
        memcpy(in + (size_t)i * cmd_len, "status\n", cmd_len);

    fx_open();
    int fd = cli_connect();
    size_t sent = 0;
    int stalls = 0;
    /* Phase 1: write as much as the sockets take, never reading. */
    while (sent < N * cmd_len && stalls < 20) {
        ssize_t n = send(fd, in + sent, N * cmd_len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n, stalls = 0;
        else
            stalls++;
        assert_true(evloop_run_once(&fx.loop, 5) >= 0);
    }
    assert_int_equal(fx.srv.nr_conns, 1);
    assert_true(fake.status_calls < N); /* reading paused */

    /* Phase 2: read, and everything arrives in order. */
    size_t got = 0, want = (size_t)N * reply_len;
    char buf[65536];
    char *line = malloc(reply_len);
    size_t line_len = 0;
    uint64_t deadline = now_ns() + 4 * WAIT_NS;
    while (got < want) {
        assert_true(now_ns() < deadline);
        if (sent < N * cmd_len) {
            ssize_t n = send(fd, in + sent, N * cmd_len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        }
        assert_true(evloop_run_once(&fx.loop, 1) >= 0);
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        assert_true(n != 0);
        for (ssize_t i = 0; i < n; i++) {
            assert_true(line_len < reply_len);
            line[line_len++] = buf[i];
            if (buf[i] == '\n') {
                assert_int_equal(line_len, reply_len);
                assert_memory_equal(line, STATUS_REPLY "\n", reply_len);
                line_len = 0;
            }
        }
        if (n > 0)
            got += (size_t)n;
    }
    assert_int_equal(got, want);
    assert_int_equal(fake.status_calls, N);
    cli_expect_silence(fd);
    free(line);
    free(in);
    close(fd);
}

/* Replies piling up past CTL_MAX_PENDING drop the client. */
static void test_server_drops_at_cap(void **state)
{
    (void)state;
    fx_open();
    fake.status_big = CTL_MAX_PENDING * 2 / 3;
    int fd = cli_connect();
    cli_send(fd, "status\nstatus\n", 14);
    cli_expect_closed(fd);
    assert_int_equal(fx.srv.nr_conns, 0);
    close(fd);

    /* One big reply alone is fine. */
    fd = cli_connect();
    cli_send(fd, "status\n", 7);
    char *got = cli_read_lines(fd, 1);
    assert_int_equal(strlen(got),
                     strlen(STATUS_REPLY) + strlen(", \"big\": \"\"") + fake.status_big + 1);
    free(got);
    close(fd);
}

static void test_server_handler_replies(void **state)
{
    (void)state;
    fx_open();
    int fd = cli_connect();
    fake.status_unfinished = true;
    cli_expect(fd, "status\n",
               "{\"error\": \"internal error: the reply is not a complete JSON value\"}\n");
    close(fd);
    ctl_server_close(&fx.srv);

    /* No handler: the command is not supported. */
    static const struct ctl_handlers none = {0};
    char err[256];
    assert_int_equal(ctl_server_open(&fx.srv, fx.path, &fx.loop, &none, NULL, err, sizeof(err)), 0);
    fd = cli_connect();
    cli_expect(fd, "shutdown\n",
               "{\"error\": \"this command is not supported by this minivmm\"}\n");
    close(fd);
}

static void test_server_too_many_clients(void **state)
{
    (void)state;
    fx_open();
    int fds[CTL_MAX_CONNS + 1];
    for (int i = 0; i <= CTL_MAX_CONNS; i++)
        fds[i] = cli_connect();
    pump(2);
    assert_int_equal(fx.srv.nr_conns, CTL_MAX_CONNS);
    char *got = cli_read_lines(fds[CTL_MAX_CONNS], 1);
    assert_string_equal(got, "{\"error\": \"too many control connections (at most 32); close "
                             "one and retry\"}\n");
    free(got);
    cli_expect_closed(fds[CTL_MAX_CONNS]);
    cli_expect(fds[0], "status\n", STATUS_REPLY "\n");
    for (int i = 0; i <= CTL_MAX_CONNS; i++)
        close(fds[i]);
}

/*
 * Idle clients cannot hold every slot: once the idlest one has been idle for
 * idle_evict_ms, a new client takes its slot and it is told why; a client
 * that was active meanwhile (even half a line) keeps its slot.
 */
static void test_server_idle_clients_make_room(void **state)
{
    (void)state;
    fx_open();
    fx.srv.idle_evict_ms = 200;
    int fds[CTL_MAX_CONNS + 2];
    for (int i = 0; i < CTL_MAX_CONNS; i++)
        fds[i] = cli_connect();
    pump(2);
    assert_int_equal(fx.srv.nr_conns, CTL_MAX_CONNS);
    usleep(300 * 1000);
    /* All idle for 300 ms but one, which sends half a command now. */
    for (int i = 0; i < CTL_MAX_CONNS; i++)
        if (i != 5)
            cli_send(fds[i], "sta", 3);
    pump(2);
    usleep(300 * 1000);
    cli_send(fds[7], "tus\n", 4); /* 7 finishes its command: active again */
    char *got = cli_read_lines(fds[7], 1);
    assert_string_equal(got, STATUS_REPLY "\n");
    free(got);
    /* The newcomer takes a slot: the idlest is 5 (idle since it connected). */
    fds[CTL_MAX_CONNS] = cli_connect();
    pump(2);
    assert_int_equal(fx.srv.nr_conns, CTL_MAX_CONNS);
    got = cli_read_lines(fds[5], 1);
    assert_string_equal(got, "{\"error\": \"closed: idle while every control connection was "
                             "taken\"}\n");
    free(got);
    cli_expect_closed(fds[5]);
    cli_expect(fds[CTL_MAX_CONNS], "status\n", STATUS_REPLY "\n");
    /* The half-written ones keep their partial line when they are not the idlest. */
    cli_expect(fds[7], "status\n", STATUS_REPLY "\n");
    /* Nobody idle long enough (everyone was just active): the next newcomer is refused. */
    fx.srv.idle_evict_ms = 60 * 1000;
    fds[CTL_MAX_CONNS + 1] = cli_connect();
    pump(2);
    got = cli_read_lines(fds[CTL_MAX_CONNS + 1], 1);
    assert_non_null(strstr(got, "too many control connections"));
    free(got);
    cli_expect_closed(fds[CTL_MAX_CONNS + 1]);
    for (int i = 0; i < CTL_MAX_CONNS + 2; i++)
        close(fds[i]);
}

/* Open file descriptors of this process. */
static unsigned open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    unsigned n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/*
 * A storm: 1000 connections in waves of 40 (more than the 32 slots), each
 * one sending a command whole, in two halves, or only half of it and then
 * hanging up, or a 1 MiB line; the server answers what it can, refuses
 * what it must, and ends with no connection and no descriptor more than it
 * started with.
 */
static void test_server_storm(void **state)
{
    (void)state;
    fx_open();
    unsigned fds_before = open_fds();
    size_t big_len = 1 << 20;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    memset(big, 'y', big_len);
    big[big_len] = '\n';
    unsigned answered = 0, refused = 0, too_long = 0;
    for (int wave = 0; wave < 25; wave++) {
        int fds[40];
        for (int i = 0; i < 40; i++)
            fds[i] = cli_connect();
        for (int i = 0; i < 40; i++) {
            switch ((wave * 40 + i) % 4) {
            case 0:
                send(fds[i], "status\n", 7, MSG_NOSIGNAL);
                break;
            case 1:
                send(fds[i], "sta", 3, MSG_NOSIGNAL);
                pump(1);
                send(fds[i], "tus\n", 4, MSG_NOSIGNAL);
                break;
            case 2:
                send(fds[i], "resize 1", 8, MSG_NOSIGNAL); /* and hangs up below */
                break;
            case 3:
                /* 1 MiB without a newline until the end, sent as the socket takes it. */
                for (size_t off = 0; off <= big_len;) {
                    ssize_t n =
                        send(fds[i], big + off, big_len + 1 - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                    if (n > 0)
                        off += (size_t)n;
                    else if (n < 0 && errno != EAGAIN)
                        break; /* refused: the server closed it */
                    pump(1);
                }
                break;
            }
        }
        pump(5);
        for (int i = 0; i < 40; i++) {
            char buf[512];
            uint64_t deadline = now_ns() + WAIT_NS;
            ssize_t n = 0;
            if ((wave * 40 + i) % 4 != 2) {
                while ((n = recv(fds[i], buf, sizeof(buf) - 1, MSG_DONTWAIT)) < 0 &&
                       errno == EAGAIN && now_ns() < deadline)
                    pump(1);
                buf[n > 0 ? n : 0] = '\0';
                if (strstr(buf, "too many control connections"))
                    refused++;
                else if (strstr(buf, "command line too long"))
                    too_long++;
                else if (strstr(buf, STATUS_REPLY))
                    answered++;
                else
                    fail_msg("wave %d client %d: '%s' (%zd)", wave, i, buf, n);
            }
            close(fds[i]);
        }
        pump(5);
    }
    free(big);
    /* Every connection is gone once the server saw the hang-ups. */
    uint64_t deadline = now_ns() + WAIT_NS;
    while (fx.srv.nr_conns > 0 && now_ns() < deadline)
        pump(1);
    assert_int_equal(fx.srv.nr_conns, 0);
    assert_int_equal(open_fds(), fds_before);
    assert_true(answered > 0 && refused > 0 && too_long > 0);
    assert_int_equal(answered + refused + too_long, 750);
    /* And it still works. */
    int fd = cli_connect();
    cli_expect(fd, "status\n", STATUS_REPLY "\n");
    close(fd);
}

/* ---- server: the socket file -------------------------------------------- */

static void test_server_socket_mode(void **state)
{
    (void)state;
    struct stat st;
    mode_t old = umask(0); /* the server must not depend on the caller's umask */
    fx_open();
    umask(old);
    assert_int_equal(lstat(fx.path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_ino, fx.srv.sock_ino);

    /* The listening socket is non-blocking and close-on-exec. */
    assert_true(fcntl(fx.srv.listen_fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fx.srv.listen_fd, F_GETFD) & FD_CLOEXEC);
}

static void expect_open_error(const char *path, const char *want)
{
    struct ctl_server s;
    char err[512] = "";
    memset(&s, 0xff, sizeof(s)); /* open must not rely on a zeroed struct */
    assert_int_equal(ctl_server_open(&s, path, &fx.loop, &fake_handlers, &fake, err, sizeof(err)),
                     -1);
    assert_string_equal(err, want);
    ctl_server_close(&s); /* a no-op after a failed open */
}

static void test_server_refuses_other_files(void **state)
{
    (void)state;
    char want[512];
    struct stat st;

    /* A regular file is refused and left alone. */
    int fd = open(fx.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "keep", 4), 4);
    close(fd);
    snprintf(want, sizeof(want),
             "--api-socket %s: a file exists there and is not a socket; remove it or choose "
             "another path",
             fx.path);
    expect_open_error(fx.path, want);
    assert_int_equal(lstat(fx.path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 4);
    unlink(fx.path);

    /* So is a directory, and a symlink (even to a socket). */
    char other[200];
    snprintf(other, sizeof(other), "%s/other", fx.dir);
    assert_int_equal(mkdir(other, 0700), 0);
    snprintf(want, sizeof(want),
             "--api-socket %s: a directory exists there and is not a socket; remove it or "
             "choose another path",
             other);
    expect_open_error(other, want);
    rmdir(other);
    assert_int_equal(symlink("/dev/null", fx.path), 0);
    snprintf(want, sizeof(want),
             "--api-socket %s: a file exists there and is not a socket; remove it or choose "
             "another path",
             fx.path);
    expect_open_error(fx.path, want);
    unlink(fx.path);
}

static void test_server_bad_paths(void **state)
{
    (void)state;
    char path[300], want[512];
    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[200] = '\0';
    snprintf(want, sizeof(want),
             "--api-socket path %s is too long (200 bytes; a unix socket path has at most 107): "
             "choose a shorter one",
             path);
    expect_open_error(path, want);
    expect_open_error("", "--api-socket: the path is empty");
    expect_open_error("/nonexistent-minivmm-dir/api.sock",
                      "--api-socket /nonexistent-minivmm-dir/api.sock: the directory does not "
                      "exist; create it or choose another path");
    /* A path through a regular file. */
    char through[300];
    int fd = open(fx.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    snprintf(through, sizeof(through), "%s/api.sock", fx.path);
    snprintf(want, sizeof(want),
             "--api-socket %s: a directory in the path is not a directory; choose another path",
             through);
    expect_open_error(through, want);
    unlink(fx.path);
}

static void test_server_replaces_stale_socket(void **state)
{
    (void)state;
    struct sockaddr_un addr = addr_of(fx.path);
    struct stat before, after;

    /* A socket file whose server died: bound, never listened, closed. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
    assert_int_equal(lstat(fx.path, &before), 0);
    /* A second name keeps the old inode alive, so its number cannot be reused. */
    char other[200];
    snprintf(other, sizeof(other), "%s/other", fx.dir);
    assert_int_equal(link(fx.path, other), 0);

    fx_open();
    assert_int_equal(lstat(fx.path, &after), 0);
    assert_true(S_ISSOCK(after.st_mode));
    assert_true(before.st_ino != after.st_ino);
    int c = cli_connect();
    cli_expect(c, "status\n", STATUS_REPLY "\n");
    close(c);
}

static void test_server_refuses_live_socket(void **state)
{
    (void)state;
    char want[512];
    fx_open();
    snprintf(want, sizeof(want),
             "--api-socket %s: another process is listening on it; stop that process or choose "
             "another path",
             fx.path);
    expect_open_error(fx.path, want);
    /* The first server and its file are untouched. */
    int fd = cli_connect();
    cli_expect(fd, "status\n", STATUS_REPLY "\n");
    close(fd);
}

static void test_server_close(void **state)
{
    (void)state;
    struct stat st;
    fx_open();
    int fd = cli_connect();
    cli_send(fd, "status\n", 7);
    ctl_server_close(&fx.srv); /* before the command was read */
    assert_int_equal(lstat(fx.path, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(fx.srv.listen_fd, -1);
    /* Closed: end of file, or a reset because the command was never read. */
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
    close(fd);
    ctl_server_close(&fx.srv); /* twice is fine */

    /* A file that replaced our socket is not removed. */
    fx_open();
    assert_int_equal(unlink(fx.path), 0);
    fd = open(fx.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    ctl_server_close(&fx.srv);
    assert_int_equal(lstat(fx.path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    unlink(fx.path);

    /* Nor is another socket (another minivmm's, say). */
    fx_open();
    assert_int_equal(unlink(fx.path), 0);
    struct sockaddr_un addr = addr_of(fx.path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ctl_server_close(&fx.srv);
    assert_int_equal(lstat(fx.path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    close(fd);
}

/* Drain what fd has now, without pumping the server; returns the byte count. */
static size_t cli_drain(int fd)
{
    char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        total += (size_t)n;
    return total;
}

static void test_server_close_flushes(void **state)
{
    (void)state;
    fx_open();
    int fd = cli_connect();
    cli_send(fd, "shutdown\n", 9);
    pump(1); /* the command is executed, its reply sent */
    ctl_server_close(&fx.srv);
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_int_equal(n, 3);
    buf[n] = '\0';
    assert_string_equal(buf, "{}\n");
    close(fd);

    /* A reply too big for the socket: what is still queued gets a last try. */
    fx_open();
    fake.status_big = CTL_MAX_PENDING / 2;
    fd = cli_connect();
    cli_send(fd, "status\n", 7);
    pump(2);
    assert_int_equal(fake.status_calls, 1);
    size_t before = cli_drain(fd); /* room in the socket, the server not told */
    assert_true(before > 0 && before < fake.status_big);
    ctl_server_close(&fx.srv);
    assert_true(cli_drain(fd) > 0);
    close(fd);
}

/* ---- client ------------------------------------------------------------- */

static void test_reply_is_error(void **state)
{
    (void)state;
    assert_false(ctl_reply_is_error("{}"));
    assert_false(ctl_reply_is_error(" { } "));
    assert_false(ctl_reply_is_error(STATUS_REPLY));
    assert_false(ctl_reply_is_error("{\"id\": \"mem0\", \"requested\": 4096}"));
    assert_false(
        ctl_reply_is_error("{\"a\": {\"error\": 1}, \"b\": [\"error\", {}], \"c\": null}"));
    assert_false(ctl_reply_is_error("{\"x\\\"error\": \"}\", \"errors\": true}"));
    assert_false(ctl_reply_is_error("{\"\": 1}"));
    assert_true(ctl_reply_is_error("{\"error\": \"x\"}"));
    assert_true(ctl_reply_is_error("{\"a\": [1, {\"b\": \"}\"}], \"error\": null}"));
    assert_true(ctl_reply_is_error("{\"a\": 1,\"error\":2}"));
    /* Not an object, or malformed: treated as failure. */
    assert_true(ctl_reply_is_error(""));
    assert_true(ctl_reply_is_error("[]"));
    assert_true(ctl_reply_is_error("ok"));
    assert_true(ctl_reply_is_error("{\"a\": 1"));
    assert_true(ctl_reply_is_error("{\"a\" 1}"));
    assert_true(ctl_reply_is_error("{\"a\": \"unterminated}"));
    assert_true(ctl_reply_is_error("{\"a\": [1, 2}"));
}

struct run {
    int status; /* exit status, or -1 if killed */
    char out[8192];
    char err[8192];
    size_t out_len, err_len;
};

static void drain(int fd, char *buf, size_t *len, size_t cap)
{
    for (;;) {
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    buf[*len] = '\0';
}

/*
 * Run ctl_client_main(argv) in a child, stdout and stderr captured, while
 * the parent calls serve() (e.g. pumps the server) until the child exits.
 */
static void run_ctl(struct run *r, void (*serve)(void), char **argv)
{
    int out[2], err[2];
    int argc = 0;
    while (argv[argc])
        argc++;
    memset(r, 0, sizeof(*r));
    assert_int_equal(pipe2(out, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC | O_NONBLOCK), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        fcntl(STDOUT_FILENO, F_SETFL, 0);
        fcntl(STDERR_FILENO, F_SETFL, 0);
        int status = ctl_client_main(argc, argv);
        fflush(stdout);
        _exit(status);
    }
    close(out[1]);
    close(err[1]);
    uint64_t deadline = now_ns() + 3 * WAIT_NS;
    int wstatus;
    for (;;) {
        serve();
        drain(out[0], r->out, &r->out_len, sizeof(r->out));
        drain(err[0], r->err, &r->err_len, sizeof(r->err));
        pid_t w = waitpid(pid, &wstatus, WNOHANG);
        if (w == pid)
            break;
        if (now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &wstatus, 0);
            fail_msg("minivmm ctl did not finish");
        }
    }
    drain(out[0], r->out, &r->out_len, sizeof(r->out));
    drain(err[0], r->err, &r->err_len, sizeof(r->err));
    close(out[0]);
    close(err[0]);
    r->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

static void serve_loop(void)
{
    assert_true(evloop_run_once(&fx.loop, 10) >= 0);
}

static void expect_run(char **argv, int status, const char *out, const char *err)
{
    struct run r;
    run_ctl(&r, serve_loop, argv);
    assert_string_equal(r.out, out);
    assert_string_equal(r.err, err);
    assert_int_equal(r.status, status);
}

#define USAGE "usage: minivmm ctl --api-socket PATH status | resize [ID] SIZE | dump | shutdown"

static void test_client_main(void **state)
{
    (void)state;
    fx_open();
    char *p = fx.path;
    char eq[200];
    snprintf(eq, sizeof(eq), "--api-socket=%s", p);

    expect_run((char *[]){"ctl", "--api-socket", p, "resize", "mem0", "2G", NULL}, 0,
               "{\"id\": \"mem0\", \"requested\": 2147483648}\n", "");
    assert_string_equal(fake.resize_id, "mem0");
    expect_run((char *[]){"ctl", "status", eq, NULL}, 0, STATUS_REPLY "\n", "");
    expect_run((char *[]){"ctl", eq, "resize", "bad", "1G", NULL}, 1,
               "{\"error\": \"no virtio-mem device 'bad'\"}\n", "");
    expect_run((char *[]){"ctl", eq, "resize", "lots", NULL}, 1,
               "{\"error\": \"'lots' is not a size (e.g. 4G, 1536M)\"}\n", "");
    /* A negative number is a bad size for the server to refuse, not an unknown option. */
    expect_run((char *[]){"ctl", eq, "resize", "-1", NULL}, 1,
               "{\"error\": \"'-1' is not a size (e.g. 4G, 1536M)\"}\n", "");
    expect_run((char *[]){"ctl", eq, "--", "frob", "-x", NULL}, 1,
               "{\"error\": \"unknown command 'frob'; commands: " COMMANDS "\"}\n", "");
    expect_run((char *[]){"ctl", eq, "shutdown", NULL}, 0, "{}\n", "");
    assert_int_equal(fake.shutdown_calls, 1);
    pump(3);
    assert_int_equal(fx.srv.nr_conns, 0);
}

static void test_client_usage(void **state)
{
    (void)state;
    struct run r;
    fx_open();
    char *p = fx.path;

    expect_run((char *[]){"ctl", "status", NULL}, 2, "",
               "minivmm: ctl: --api-socket PATH is required; " USAGE "\n");
    expect_run((char *[]){"ctl", "--api-socket", p, NULL}, 2, "",
               "minivmm: ctl: no command given; " USAGE "\n");
    expect_run((char *[]){"ctl", "--api-socket=", "status", NULL}, 2, "",
               "minivmm: ctl: --api-socket: the path is empty; " USAGE "\n");
    expect_run((char *[]){"ctl", "--api-socket", "", "status", NULL}, 2, "",
               "minivmm: ctl: --api-socket: the path is empty; " USAGE "\n");
    /* A path that cannot be a socket's is a usage error, found before connecting. */
    char longpath[200], want[400];
    memset(longpath, 'p', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    snprintf(want, sizeof(want),
             "minivmm: ctl: --api-socket path %s is too long (199 bytes; a unix socket path has "
             "at most 107): give the path minivmm was started with\n",
             longpath);
    expect_run((char *[]){"ctl", "--api-socket", longpath, "status", NULL}, 2, "", want);
    expect_run((char *[]){"ctl", "status", "--api-socket", NULL}, 2, "",
               "minivmm: ctl: --api-socket needs a path; " USAGE "\n");
    expect_run((char *[]){"ctl", "--api-socket", p, "--force", "status", NULL}, 2, "",
               "minivmm: ctl: unknown option '--force'; " USAGE "\n");
    expect_run((char *[]){"ctl", "--api-socket", p, "resize", "1G\nshutdown", NULL}, 2, "",
               "minivmm: ctl: the command must be on one line (a word contains a line break)\n");
    assert_int_equal(fake.shutdown_calls, 0);

    run_ctl(&r, serve_loop, (char *[]){"ctl", "--help", NULL});
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_non_null(strstr(r.out, "usage: minivmm ctl --api-socket PATH COMMAND\n"));
    assert_non_null(strstr(r.out, "resize [ID] SIZE"));
    assert_int_equal(fake.status_calls + fake.resize_calls, 0);
}

static void test_client_unreachable(void **state)
{
    (void)state;
    char want[600];
    char *p = fx.path;

    /* A regular file or a directory at the path: said so, not "Connection refused". */
    int rfd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(rfd >= 0);
    close(rfd);
    snprintf(want, sizeof(want),
             "minivmm: cannot connect to %s: it is a file, not a socket (give the PATH minivmm "
             "was started with: --api-socket PATH)\n",
             p);
    expect_run((char *[]){"ctl", "--api-socket", p, "status", NULL}, 1, "", want);
    unlink(p);
    snprintf(want, sizeof(want),
             "minivmm: cannot connect to %s: it is a directory, not a socket (give the PATH "
             "minivmm was started with: --api-socket PATH)\n",
             fx.dir);
    expect_run((char *[]){"ctl", "--api-socket", fx.dir, "status", NULL}, 1, "", want);

    /* Nothing at the path. */
    snprintf(want, sizeof(want),
             "minivmm: cannot connect to %s: No such file or directory (is minivmm running with "
             "--api-socket %s?)\n",
             p, p);
    expect_run((char *[]){"ctl", "--api-socket", p, "status", NULL}, 1, "", want);

    /* A stale socket. */
    struct sockaddr_un addr = addr_of(p);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
    snprintf(want, sizeof(want),
             "minivmm: cannot connect to %s: Connection refused (is minivmm running with "
             "--api-socket %s?)\n",
             p, p);
    expect_run((char *[]){"ctl", "--api-socket", p, "status", NULL}, 1, "", want);
    unlink(p);
}

static int raw_listen_fd = -1;

/* A server that accepts and hangs up without a word. */
static void serve_hang_up(void)
{
    int fd = accept4(raw_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    usleep(5000);
}

static void test_client_no_reply(void **state)
{
    (void)state;
    char err[512], want[512];
    char *reply = NULL;
    fx_open();

    /* The server is never pumped: the request times out. */
    assert_int_equal(ctl_client_request(fx.path, "status", 300, &reply, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "no reply from %s within 300 ms", fx.path);
    assert_string_equal(err, want);
    assert_null(reply);
    pump(3); /* the server meets a client that is gone */
    assert_int_equal(fx.srv.nr_conns, 0);
    ctl_server_close(&fx.srv);

    /* A peer that closes without replying. */
    struct sockaddr_un addr = addr_of(fx.path);
    raw_listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(raw_listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(raw_listen_fd, 4), 0);
    struct run r;
    run_ctl(&r, serve_hang_up, (char *[]){"ctl", "--api-socket", fx.path, "status", NULL});
    snprintf(want, sizeof(want), "minivmm: %s closed the connection without replying\n", fx.path);
    assert_string_equal(r.err, want);
    assert_string_equal(r.out, "");
    assert_int_equal(r.status, 1);
    close(raw_listen_fd);
    raw_listen_fd = -1;
    unlink(fx.path);
}

#define SERVER_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_long_words),
        SERVER_TEST(test_server_commands_in_one_write),
        SERVER_TEST(test_server_byte_by_byte),
        SERVER_TEST(test_server_blank_lines),
        SERVER_TEST(test_server_bad_then_good),
        SERVER_TEST(test_server_overlong_line),
        SERVER_TEST(test_server_many_clients),
        SERVER_TEST(test_server_client_goes_away),
        SERVER_TEST(test_server_slow_reader),
        SERVER_TEST(test_server_drops_at_cap),
        SERVER_TEST(test_server_handler_replies),
        SERVER_TEST(test_server_too_many_clients),
        SERVER_TEST(test_server_idle_clients_make_room),
        SERVER_TEST(test_server_storm),
        SERVER_TEST(test_server_socket_mode),
        SERVER_TEST(test_server_refuses_other_files),
        SERVER_TEST(test_server_bad_paths),
        SERVER_TEST(test_server_replaces_stale_socket),
        SERVER_TEST(test_server_refuses_live_socket),
        SERVER_TEST(test_server_close),
        SERVER_TEST(test_server_close_flushes),
        cmocka_unit_test(test_reply_is_error),
        SERVER_TEST(test_client_main),
        SERVER_TEST(test_client_usage),
        SERVER_TEST(test_client_unreachable),
        SERVER_TEST(test_client_no_reply),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
