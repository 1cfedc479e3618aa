/* test_log.c - unit tests for base/log: line formats, levels, JSON escaping
 * checked by an independent decoder, truncation that keeps lines valid,
 * colour on a pseudo-terminal, and many threads writing at once. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

#include "base/log.h"
#include "base/str.h"

/* ---- capture: a deleted temporary file opened for appending ------------ */

static int capture_fd = -1;

static int setup_capture(void **state)
{
    (void)state;
    char path[] = "/tmp/st-test-log-XXXXXX";
    capture_fd = mkstemp(path);
    if (capture_fd < 0)
        return -1;
    unlink(path);
    fcntl(capture_fd, F_SETFL, O_APPEND);
    st_log_set_fd(capture_fd);
    st_log_set_level(ST_LOG_LEVEL_INFO);
    st_log_set_format(ST_LOG_TEXT);
    return 0;
}

static int teardown_capture(void **state)
{
    (void)state;
    st_log_set_fd(-1);
    st_log_set_level(ST_LOG_LEVEL_INFO);
    st_log_set_format(ST_LOG_TEXT);
    close(capture_fd);
    capture_fd = -1;
    return 0;
}

/* Everything written so far (NUL-terminated, caller frees); empties the
 * capture for the next check. */
static char *capture_take(size_t *len_out)
{
    off_t end = lseek(capture_fd, 0, SEEK_END);
    assert_true(end >= 0);
    char *data = malloc((size_t)end + 1);
    assert_non_null(data);
    ssize_t got = pread(capture_fd, data, (size_t)end, 0);
    assert_int_equal(got, end);
    data[end] = '\0';
    assert_int_equal(ftruncate(capture_fd, 0), 0);
    if (len_out)
        *len_out = (size_t)end;
    return data;
}

static size_t count_lines(const char *s, size_t n)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    return lines;
}

/* Checks "YYYY-MM-DDTHH:MM:SS.mmmZ" at s. */
static void assert_timestamp(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd')
            assert_true(s[i] >= '0' && s[i] <= '9');
        else
            assert_int_equal(s[i], shape[i]);
    }
}

/* ---- an independent JSON line decoder ---------------------------------- */

typedef struct {
    char key[64];
    char value[ST_LOG_LINE_MAX];
    size_t value_len;
    bool is_null;
    bool is_true;
} json_field;

static json_field fields[16];

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends code point cp as UTF-8. */
static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes one raw UTF-8 character at s by decoding and re-encoding it:
 * well-formed exactly when the shortest re-encoding gives the same bytes
 * and the code point is a scalar value.  Returns its length or 0. */
static size_t check_utf8_char(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = len == 1 ? s[0] : (uint32_t)(s[0] & (0x7f >> len));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    char again[4];
    if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000) || put_utf8(again, cp) != len ||
        memcmp(again, s, len) != 0)
        return 0;
    return len;
}

/* Parses a JSON string at *p (opening quote included) into out. */
static bool parse_json_string(const char **p, const char *end, char *out, size_t cap,
                              size_t *out_len)
{
    const char *s = *p;
    size_t n = 0;
    if (s >= end || *s != '"')
        return false;
    s++;
    while (s < end && *s != '"') {
        unsigned char c = (unsigned char)*s;
        char tmp[4];
        size_t tmp_len;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (s + 1 >= end)
                return false;
            char e = s[1];
            s += 2;
            switch (e) {
            case '"': case '\\': case '/':
                tmp[0] = e;
                tmp_len = 1;
                break;
            case 'b': tmp[0] = '\b', tmp_len = 1; break;
            case 'f': tmp[0] = '\f', tmp_len = 1; break;
            case 'n': tmp[0] = '\n', tmp_len = 1; break;
            case 'r': tmp[0] = '\r', tmp_len = 1; break;
            case 't': tmp[0] = '\t', tmp_len = 1; break;
            case 'u': {
                if (end - s < 4)
                    return false;
                uint32_t cp = 0;
                for (int i = 0; i < 4; i++) {
                    int d = hex_digit(s[i]);
                    if (d < 0)
                        return false;
                    cp = cp << 4 | (uint32_t)d;
                }
                s += 4;
                if (cp >= 0xd800 && cp < 0xe000)
                    return false; /* the logger never needs surrogates */
                tmp_len = put_utf8(tmp, cp);
                break;
            }
            default:
                return false;
            }
        } else {
            tmp_len = check_utf8_char((const unsigned char *)s, (size_t)(end - s));
            if (tmp_len == 0)
                return false;
            memcpy(tmp, s, tmp_len);
            s += tmp_len;
        }
        if (n + tmp_len > cap)
            return false;
        memcpy(out + n, tmp, tmp_len);
        n += tmp_len;
    }
    if (s >= end)
        return false;
    *p = s + 1;
    *out_len = n;
    return true;
}

/* Parses one log line: a flat object of string, null or true values and a
 * final newline.  Returns the number of fields, or -1 when malformed. */
static int parse_json_line(const char *line, size_t n)
{
    const char *p = line, *end = line + n;
    int count = 0;
    if (n < 3 || end[-1] != '\n' || *p != '{')
        return -1;
    end--;
    p++;
    for (;;) {
        if (count == (int)(sizeof fields / sizeof fields[0]))
            return -1;
        json_field *f = &fields[count];
        size_t key_len;
        memset(f, 0, sizeof *f);
        if (!parse_json_string(&p, end, f->key, sizeof f->key - 1, &key_len))
            return -1;
        if (p >= end || *p++ != ':')
            return -1;
        if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            f->is_null = true;
            p += 4;
        } else if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
            f->is_true = true;
            p += 4;
        } else if (!parse_json_string(&p, end, f->value, sizeof f->value - 1, &f->value_len)) {
            return -1;
        }
        count++;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p + 1 == end && *p == '}')
            return count;
        return -1;
    }
}

static const json_field *find_field(int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(fields[i].key, key) == 0)
            return &fields[i];
    return NULL;
}

/* ---- tests -------------------------------------------------------------- */

static void test_text_line(void **state)
{
    (void)state;
    ST_LOG_INFO("hello %d", 42);
    size_t n;
    char *out = capture_take(&n);
    assert_int_equal(n, 24 + strlen(" INFO  hello 42\n"));
    assert_timestamp(out);
    assert_string_equal(out + 24, " INFO  hello 42\n");
    free(out);

    st_log(ST_LOG_LEVEL_ERROR, "disk %s", "full");
    ST_LOG_WARN("slow");
    out = capture_take(&n);
    assert_non_null(strstr(out, " ERROR disk full\n"));
    assert_non_null(strstr(out, " WARN  slow\n"));
    assert_int_equal(count_lines(out, n), 2);
    assert_null(strchr(out, '\x1b')); /* a file never gets colour */
    free(out);
}

static void test_levels(void **state)
{
    (void)state;
    st_log_set_level(ST_LOG_LEVEL_WARN);
    assert_int_equal(st_log_get_level(), ST_LOG_LEVEL_WARN);
    assert_false(st_log_is_enabled(ST_LOG_LEVEL_INFO));
    assert_true(st_log_is_enabled(ST_LOG_LEVEL_ERROR));
    ST_LOG_DEBUG("d");
    ST_LOG_INFO("i");
    ST_LOG_WARN("w");
    ST_LOG_ERROR("e");
    st_log_kv(ST_LOG_LEVEL_INFO, "kv-info", "k", "v", NULL);
    st_log_kv(ST_LOG_LEVEL_ERROR, "kv-error", "k", "v", NULL);
    size_t n;
    char *out = capture_take(&n);
    assert_int_equal(count_lines(out, n), 3);
    assert_null(strstr(out, " i\n"));
    assert_non_null(strstr(out, " WARN  w\n"));
    assert_non_null(strstr(out, " ERROR e\n"));
    assert_non_null(strstr(out, "kv-error k=v\n"));
    free(out);

    st_log_set_level(ST_LOG_LEVEL_OFF);
    ST_LOG_ERROR("nothing");
    st_log_set_level(ST_LOG_LEVEL_DEBUG);
    st_log(ST_LOG_LEVEL_OFF, "off is not a level to write at");
    st_log((st_log_level)99, "nor is 99");
    assert_false(st_log_is_enabled((st_log_level)-1));
    out = capture_take(&n);
    assert_int_equal(n, 0);
    free(out);

    ST_LOG_DEBUG("debug now");
    out = capture_take(&n);
    assert_non_null(strstr(out, " DEBUG debug now\n"));
    free(out);
}

static void test_macros_skip_arguments(void **state)
{
    (void)state;
    int calls = 0;
    ST_LOG_DEBUG("%d", ++calls);
    assert_int_equal(calls, 0);
    st_log_set_level(ST_LOG_LEVEL_DEBUG);
    ST_LOG_DEBUG("%d", ++calls);
    assert_int_equal(calls, 1);
    free(capture_take(NULL));
}

static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        st_log_level level;
    } ok[] = {
        { "debug", ST_LOG_LEVEL_DEBUG }, { "INFO", ST_LOG_LEVEL_INFO },
        { "Warn", ST_LOG_LEVEL_WARN },   { "warning", ST_LOG_LEVEL_WARN },
        { "ERROR", ST_LOG_LEVEL_ERROR }, { "off", ST_LOG_LEVEL_OFF },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        st_log_level level = (st_log_level)-1;
        assert_int_equal(st_log_parse_level(st_str_c(ok[i].name), &level, NULL), ST_OK);
        assert_int_equal(level, ok[i].level);
    }
    st_log_level level = ST_LOG_LEVEL_ERROR;
    assert_int_equal(st_log_parse_level(st_str_make("infox", 4), &level, NULL), ST_OK);
    assert_int_equal(level, ST_LOG_LEVEL_INFO);

    st_error err = { 0 };
    level = ST_LOG_LEVEL_ERROR;
    assert_int_equal(st_log_parse_level(ST_STR("verbose"), &level, &err), ST_EINVAL);
    assert_int_equal(level, ST_LOG_LEVEL_ERROR);
    assert_non_null(strstr(err.msg, "'verbose'"));
    assert_non_null(strstr(err.msg, "debug"));
    assert_int_equal(st_log_parse_level(ST_STR(""), &level, NULL), ST_EINVAL);

    st_log_format format = ST_LOG_TEXT;
    assert_int_equal(st_log_parse_format(ST_STR("JSON"), &format, NULL), ST_OK);
    assert_int_equal(format, ST_LOG_JSON);
    assert_int_equal(st_log_parse_format(ST_STR("text"), &format, NULL), ST_OK);
    assert_int_equal(format, ST_LOG_TEXT);
    assert_int_equal(st_log_parse_format(ST_STR("xml"), &format, &err), ST_EINVAL);
    assert_non_null(strstr(err.msg, "'xml'"));

    assert_string_equal(st_log_level_name(ST_LOG_LEVEL_DEBUG), "debug");
    assert_string_equal(st_log_level_name(ST_LOG_LEVEL_WARN), "warn");
    assert_string_equal(st_log_level_name(ST_LOG_LEVEL_OFF), "off");
    assert_string_equal(st_log_level_name((st_log_level)42), "invalid");

    st_log_set_fd(-1);
    assert_int_equal(st_log_get_fd(), 2);
    st_log_set_fd(capture_fd);
    assert_int_equal(st_log_get_fd(), capture_fd);
}

static void test_json_line(void **state)
{
    (void)state;
    st_log_set_format(ST_LOG_JSON);
    assert_int_equal(st_log_get_format(), ST_LOG_JSON);
    ST_LOG_WARN("disk %s", "full");
    size_t n;
    char *out = capture_take(&n);
    assert_int_equal(n, strlen("{\"ts\":\"\",\"level\":\"warn\",\"msg\":\"disk full\"}\n") + 24);
    assert_int_equal(strncmp(out, "{\"ts\":\"", 7), 0);
    assert_timestamp(out + 7);
    assert_string_equal(out + 31, "\",\"level\":\"warn\",\"msg\":\"disk full\"}\n");
    assert_int_equal(parse_json_line(out, n), 3);
    free(out);

    st_log_kv(ST_LOG_LEVEL_INFO, "loaded", "model", "churn", "version", "4", "note", NULL, NULL);
    out = capture_take(&n);
    int count = parse_json_line(out, n);
    assert_int_equal(count, 6);
    assert_string_equal(find_field(count, "level")->value, "info");
    assert_string_equal(find_field(count, "msg")->value, "loaded");
    assert_string_equal(find_field(count, "model")->value, "churn");
    assert_string_equal(find_field(count, "version")->value, "4");
    assert_true(find_field(count, "note")->is_null);
    assert_null(find_field(count, "truncated"));
    free(out);
}

static void test_json_escaping(void **state)
{
    (void)state;
    st_log_set_format(ST_LOG_JSON);
    /* Every ASCII byte but NUL, some well-formed UTF-8, then ill-formed
     * sequences: a stray continuation, an overlong NUL, a surrogate, an
     * out-of-range lead and a sequence cut by the end of the string. */
    char msg[512];
    char expect[1024];
    size_t n = 0, e = 0;
    for (int c = 1; c < 128; c++)
        msg[n++] = (char)c, expect[e++] = (char)c;
    static const char good[] = "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf";
    memcpy(msg + n, good, sizeof good - 1), n += sizeof good - 1;
    memcpy(expect + e, good, sizeof good - 1), e += sizeof good - 1;
    static const char bad[] = "\x80|\xc0\x80|\xed\xa0\x80|\xf5\x80\x80\x80|\xff|\xe2\x82";
    static const int replaced[] = { 1, 2, 3, 4, 1, 2 }; /* U+FFFD per byte */
    const char *b = bad;
    for (size_t i = 0; i < sizeof replaced / sizeof replaced[0]; i++) {
        for (int k = 0; k < replaced[i]; k++) {
            msg[n++] = *b++;
            memcpy(expect + e, "\xef\xbf\xbd", 3), e += 3;
        }
        if (*b == '|')
            msg[n++] = *b++, expect[e++] = '|';
    }
    msg[n] = '\0';

    st_log_kv(ST_LOG_LEVEL_INFO, msg, "key \"quoted\"\\", msg, NULL);
    ST_LOG_INFO("%s", msg);
    size_t len;
    char *out = capture_take(&len);
    char *second = strchr(out, '\n') + 1;
    int count = parse_json_line(out, (size_t)(second - out));
    assert_int_equal(count, 4);
    assert_int_equal(fields[2].value_len, e);
    assert_memory_equal(fields[2].value, expect, e);
    assert_string_equal(fields[3].key, "key \"quoted\"\\");
    assert_int_equal(fields[3].value_len, e);
    assert_memory_equal(fields[3].value, expect, e);
    count = parse_json_line(second, len - (size_t)(second - out));
    assert_int_equal(count, 3);
    assert_memory_equal(fields[2].value, expect, e);
    /* Short escapes where JSON has them. */
    assert_non_null(strstr(out, "\\b\\t\\n\\u000b\\f\\r\\u000e"));
    assert_non_null(strstr(out, "!\\\"#"));
    free(out);
}

static void test_text_escaping_and_fields(void **state)
{
    (void)state;
    ST_LOG_INFO("line1\nline2\ttab\x01 \"q\" \\ \x7f");
    st_log_kv(ST_LOG_LEVEL_INFO, "fields", "plain", "churn", "spaced", "a b", "quoted", "say \"hi\"",
              "empty", "", "eq", "a=b", "null", NULL, "nl", "x\ny", NULL);
    size_t n;
    char *out = capture_take(&n);
    assert_int_equal(count_lines(out, n), 2);
    assert_non_null(strstr(out, " INFO  line1\\nline2\\ttab\\x01 \"q\" \\ \\x7f\n"));
    assert_non_null(strstr(out, " INFO  fields plain=churn spaced=\"a b\" quoted=\"say \\\"hi\\\"\" "
                                "empty=\"\" eq=\"a=b\" null=(null) nl=\"x\\ny\"\n"));
    free(out);
}

static void test_errno_preserved(void **state)
{
    (void)state;
    errno = EBADF;
    ST_LOG_INFO("keeps errno");
    assert_int_equal(errno, EBADF);
    st_log_kv(ST_LOG_LEVEL_INFO, "kv keeps errno", NULL);
    assert_int_equal(errno, EBADF);
    free(capture_take(NULL));
}

static void test_truncation(void **state)
{
    (void)state;
    enum { BIG = 3 * ST_LOG_LINE_MAX };
    static char big[BIG + 1];
    size_t n;
    char *out;
    int count;

    /* Plain, escape-heavy and multi-byte messages: each line is cut to at
     * most ST_LOG_LINE_MAX bytes and stays one valid JSON object. */
    static const char *const fills[] = { "x", "\x01", "\"", "\xc3\xa9", "\xe2\x82\xac", "\xff" };
    st_log_set_format(ST_LOG_JSON);
    for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++) {
        size_t unit = strlen(fills[f]);
        size_t len = 0;
        while (len + unit <= BIG)
            memcpy(big + len, fills[f], unit), len += unit;
        big[len] = '\0';
        ST_LOG_ERROR("%s", big);
        st_log_kv(ST_LOG_LEVEL_ERROR, "m", "key", big, NULL);
        st_log_kv(ST_LOG_LEVEL_ERROR, big, "key", "value", NULL);
        out = capture_take(&n);
        assert_int_equal(count_lines(out, n), 3);
        for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
            size_t line_len = (size_t)(nl + 1 - line);
            assert_true(line_len <= ST_LOG_LINE_MAX);
            assert_true(line_len > ST_LOG_LINE_MAX - 64); /* cut late, not early */
            count = parse_json_line(line, line_len);
            assert_true(count >= 4);
            assert_true(find_field(count, "truncated")->is_true);
        }
        free(out);
    }

    /* Lengths around the limit, field by field: valid, and marked exactly
     * when something was left out. */
    for (size_t len = ST_LOG_LINE_MAX - 120; len < ST_LOG_LINE_MAX - 10; len++) {
        memset(big, 'y', len);
        big[len] = '\0';
        st_log_kv(ST_LOG_LEVEL_ERROR, "m", "a", big, "bb", "value", NULL);
        out = capture_take(&n);
        assert_true(n <= ST_LOG_LINE_MAX);
        count = parse_json_line(out, n);
        assert_true(count >= 4);
        const json_field *a = find_field(count, "a");
        const json_field *bb = find_field(count, "bb");
        bool is_complete = a->value_len == len && bb && strcmp(bb->value, "value") == 0;
        assert_int_equal(find_field(count, "truncated") != NULL, !is_complete);
        free(out);
    }

    /* Text lines are cut with a marker, exactly when something is left out. */
    st_log_set_format(ST_LOG_TEXT);
    for (size_t len = ST_LOG_LINE_MAX - 120; len < ST_LOG_LINE_MAX - 10; len++) {
        memset(big, ' ', len);
        big[len] = '\0';
        st_log_kv(ST_LOG_LEVEL_ERROR, "m", "a", big, "bb", "value", NULL);
        out = capture_take(&n);
        assert_true(n <= ST_LOG_LINE_MAX);
        assert_int_equal(count_lines(out, n), 1);
        bool is_cut = strstr(out, " [truncated]\n") != NULL;
        assert_int_equal(is_cut, strstr(out, "\" bb=value\n") == NULL);
        free(out);
    }
    memset(big, 'z', BIG);
    big[BIG] = '\0';
    ST_LOG_WARN("%s", big);
    out = capture_take(&n);
    assert_true(n <= ST_LOG_LINE_MAX);
    assert_int_equal(count_lines(out, n), 1);
    assert_true(n > strlen(" [truncated]\n"));
    assert_string_equal(out + n - strlen(" [truncated]\n"), " [truncated]\n");
    free(out);
}

/* Opens a pseudo-terminal pair; false when the system has none. */
static bool open_pty(int *master, int *slave)
{
    *master = posix_openpt(O_RDWR | O_NOCTTY);
    if (*master < 0)
        return false;
    if (grantpt(*master) != 0 || unlockpt(*master) != 0) {
        close(*master);
        return false;
    }
    const char *name = ptsname(*master);
    *slave = name ? open(name, O_RDWR | O_NOCTTY) : -1;
    if (*slave < 0) {
        close(*master);
        return false;
    }
    return true;
}

/* Reads from the pty master until a newline arrives (or a second passes). */
static size_t read_pty_line(int master, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap && !memchr(buf, '\n', n)) {
        struct pollfd pfd = { master, POLLIN, 0 };
        if (poll(&pfd, 1, 1000) <= 0)
            break;
        ssize_t got = read(master, buf + n, cap - 1 - n);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    return n;
}

static void test_colour_on_terminal(void **state)
{
    (void)state;
    int master, slave;
    if (!open_pty(&master, &slave)) {
        skip();
        return;
    }
    char *saved_no_color = getenv("NO_COLOR") ? strdup(getenv("NO_COLOR")) : NULL;
    char *saved_term = getenv("TERM") ? strdup(getenv("TERM")) : NULL;
    char buf[512];

    unsetenv("NO_COLOR");
    setenv("TERM", "xterm", 1);
    st_log_set_fd(slave);
    ST_LOG_ERROR("boom");
    assert_true(read_pty_line(master, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "\x1b[1;31mERROR\x1b[0m boom"));

    setenv("NO_COLOR", "", 1); /* empty means unset */
    st_log_set_fd(slave);
    ST_LOG_WARN("still colour");
    read_pty_line(master, buf, sizeof buf);
    assert_non_null(strstr(buf, "\x1b[33mWARN \x1b[0m still colour"));

    setenv("NO_COLOR", "1", 1);
    st_log_set_fd(slave);
    ST_LOG_ERROR("plain");
    read_pty_line(master, buf, sizeof buf);
    assert_non_null(strstr(buf, " ERROR plain"));
    assert_null(strchr(buf, '\x1b'));

    unsetenv("NO_COLOR");
    setenv("TERM", "dumb", 1);
    st_log_set_fd(slave);
    ST_LOG_ERROR("dumb");
    read_pty_line(master, buf, sizeof buf);
    assert_null(strchr(buf, '\x1b'));

    setenv("TERM", "xterm", 1);
    st_log_set_fd(slave);
    st_log_set_format(ST_LOG_JSON);
    ST_LOG_ERROR("json never has colour");
    read_pty_line(master, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"msg\":\"json never has colour\""));
    assert_null(strchr(buf, '\x1b'));

    if (saved_no_color)
        setenv("NO_COLOR", saved_no_color, 1);
    else
        unsetenv("NO_COLOR");
    if (saved_term)
        setenv("TERM", saved_term, 1);
    else
        unsetenv("TERM");
    free(saved_no_color);
    free(saved_term);
    st_log_set_fd(capture_fd);
    close(slave);
    close(master);
}

enum { WRITER_THREADS = 8, LINES_PER_WRITER = 400 };

static void *writer_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[301];
    memset(pad, 'a' + id, sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < LINES_PER_WRITER; i++) {
        if (i % 2)
            ST_LOG_INFO("writer=%d seq=%d %s", id, i, pad);
        else {
            char seq[16];
            snprintf(seq, sizeof seq, "%d", i);
            st_log_kv(ST_LOG_LEVEL_INFO, pad, "writer", (const char[]){ (char)('0' + id), 0 },
                      "seq", seq, NULL);
        }
    }
    return NULL;
}

static void test_threads_never_interleave(void **state)
{
    (void)state;
    st_log_set_format(ST_LOG_JSON);
    pthread_t threads[WRITER_THREADS];
    for (int t = 0; t < WRITER_THREADS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, writer_main, (void *)(intptr_t)t), 0);
    for (int t = 0; t < WRITER_THREADS; t++)
        pthread_join(threads[t], NULL);

    size_t n;
    char *out = capture_take(&n);
    static bool seen[WRITER_THREADS][LINES_PER_WRITER];
    memset(seen, 0, sizeof seen);
    assert_int_equal(count_lines(out, n), WRITER_THREADS * LINES_PER_WRITER);
    for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        int count = parse_json_line(line, (size_t)(nl + 1 - line));
        assert_true(count >= 3);
        int id, seq;
        const json_field *writer = find_field(count, "writer");
        if (writer) {
            id = writer->value[0] - '0';
            seq = atoi(find_field(count, "seq")->value);
        } else {
            assert_int_equal(sscanf(find_field(count, "msg")->value, "writer=%d seq=%d", &id, &seq), 2);
        }
        assert_true(id >= 0 && id < WRITER_THREADS && seq >= 0 && seq < LINES_PER_WRITER);
        assert_false(seen[id][seq]);
        seen[id][seq] = true;
        /* The padding belongs to the same writer: no bytes from another line. */
        const char *msg = find_field(count, "msg")->value;
        const char *pad = writer ? msg : strrchr(msg, ' ') + 1;
        assert_int_equal(strspn(pad, (const char[]){ (char)('a' + id), 0 }), 300);
    }
    free(out);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_capture, teardown_capture)
    const struct CMUnitTest tests[] = {
        T(test_text_line),
        T(test_levels),
        T(test_macros_skip_arguments),
        T(test_parse),
        T(test_json_line),
        T(test_json_escaping),
        T(test_text_escaping_and_fields),
        T(test_errno_preserved),
        T(test_truncation),
        T(test_colour_on_terminal),
        T(test_threads_never_interleave),
    };
#undef T
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
