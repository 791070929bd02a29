/* Unit tests for the JSON writer (vmm/json.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "vmm/json.h"

#define FAILED_TEXT "{\"error\": \"internal error: the reply could not be built\"}"

static void test_empty(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    assert_true(json_ok(&j));
    assert_false(json_complete(&j)); /* nothing written yet */
    assert_string_equal(json_str(&j), "");
    json_free(&j);
    json_free(&j); /* freeing twice is harmless */
}

static void test_flat_object(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_object_begin(&j);
    assert_false(json_complete(&j));
    json_kv_string(&j, "id", "mem0");
    json_kv_u64(&j, "size", 4096);
    json_kv_bool(&j, "plugged", true);
    json_kv_bool(&j, "busy", false);
    json_object_end(&j);
    assert_true(json_ok(&j));
    assert_true(json_complete(&j));
    assert_string_equal(json_str(&j),
                        "{\"id\": \"mem0\", \"size\": 4096, \"plugged\": true, \"busy\": false}");
    assert_null(strchr(json_str(&j), '\n'));
    json_free(&j);
}

static void test_empty_containers(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_object_begin(&j);
    json_object_end(&j);
    assert_string_equal(json_str(&j), "{}");
    json_free(&j);

    json_init(&j);
    json_array_begin(&j);
    json_array_end(&j);
    assert_true(json_complete(&j));
    assert_string_equal(json_str(&j), "[]");
    json_free(&j);
}

static void test_nesting_and_commas(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_object_begin(&j);
    json_key(&j, "devices");
    json_array_begin(&j);
    for (int i = 0; i < 2; i++) {
        json_object_begin(&j);
        json_kv_u64(&j, "n", (uint64_t)i);
        json_key(&j, "blocks");
        json_array_begin(&j);
        json_u64(&j, 1);
        json_u64(&j, 2);
        json_array_begin(&j);
        json_array_end(&j);
        json_object_begin(&j);
        json_object_end(&j);
        json_array_end(&j);
        json_object_end(&j);
    }
    json_array_end(&j);
    json_kv_string(&j, "after", "x");
    json_object_end(&j);
    assert_true(json_complete(&j));
    assert_string_equal(json_str(&j), "{\"devices\": [{\"n\": 0, \"blocks\": [1, 2, [], {}]}, "
                                      "{\"n\": 1, \"blocks\": [1, 2, [], {}]}], \"after\": \"x\"}");
    json_free(&j);
}

/* json_string(s) inside an array, as text. */
static void check_string(const char *s, const char *want)
{
    struct json j;
    json_init(&j);
    json_array_begin(&j);
    json_string(&j, s);
    json_array_end(&j);
    assert_true(json_ok(&j));
    assert_string_equal(json_str(&j), want);
    json_free(&j);
}

static void test_escaping(void **state)
{
    (void)state;
    check_string("", "[\"\"]");
    check_string("plain", "[\"plain\"]");
    check_string("say \"hi\"", "[\"say \\\"hi\\\"\"]");
    check_string("C:\\dir\\", "[\"C:\\\\dir\\\\\"]");
    check_string("a\nb\rc\td\be\ff", "[\"a\\nb\\rc\\td\\be\\ff\"]");
    check_string("\x01\x1f", "[\"\\u0001\\u001f\"]");
    check_string("\x1b[1m", "[\"\\u001b[1m\"]");
    check_string("/ \x7f", "[\"/ \x7f\"]"); /* neither needs escaping */
    /* Well-formed UTF-8 is copied as it is, including the extremes of each length. */
    check_string("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80",
                 "[\"gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80\"]");
    check_string("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
                 "[\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"]");
    /* Anything else >= 0x80 becomes U+FFFD, one per byte: the reply stays valid UTF-8. */
    check_string("\xff\xfe", "[\"\\ufffd\\ufffd\"]");
    check_string("a\x80"
                 "b",
                 "[\"a\\ufffdb\"]");                             /* lone continuation byte */
    check_string("\xc3", "[\"\\ufffd\"]");                       /* cut at the end */
    check_string("\xe2\x82x", "[\"\\ufffd\\ufffdx\"]");          /* cut in the middle */
    check_string("\xc0\xaf", "[\"\\ufffd\\ufffd\"]");            /* overlong '/' */
    check_string("\xe0\x80\xaf", "[\"\\ufffd\\ufffd\\ufffd\"]"); /* overlong, 3 bytes */
    check_string("\xed\xa0\x80", "[\"\\ufffd\\ufffd\\ufffd\"]"); /* a surrogate */
    check_string("\xf4\x90\x80\x80", "[\"\\ufffd\\ufffd\\ufffd\\ufffd\"]"); /* > U+10FFFF */
    check_string("\xf5\x80", "[\"\\ufffd\\ufffd\"]");

    /* Keys are escaped the same way. */
    struct json j;
    json_init(&j);
    json_object_begin(&j);
    json_kv_u64(&j, "a\"b\n", 1);
    json_object_end(&j);
    assert_string_equal(json_str(&j), "{\"a\\\"b\\n\": 1}");
    json_free(&j);
}

static void test_long_string_grows(void **state)
{
    (void)state;
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[5000] = '"';

    struct json j;
    json_init(&j);
    json_object_begin(&j);
    json_kv_string(&j, "big", big);
    json_object_end(&j);
    assert_true(json_complete(&j));
    const char *s = json_str(&j);
    assert_int_equal(strlen(s), strlen("{\"big\": \"\"}") + sizeof(big) - 1 + 1);
    assert_memory_equal(s + 9 + 5000, "\\\"", 2);
    json_free(&j);
}

static void test_u64(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_array_begin(&j);
    json_u64(&j, 0);
    json_u64(&j, UINT64_MAX);
    json_u64(&j, 1ULL << 32);
    json_array_end(&j);
    assert_string_equal(json_str(&j), "[0, 18446744073709551615, 4294967296]");
    json_free(&j);

    /* A bare top-level scalar is a complete document too. */
    json_init(&j);
    json_bool(&j, true);
    assert_true(json_complete(&j));
    assert_string_equal(json_str(&j), "true");
    json_free(&j);
}

/* Misuse: every case must leave the writer failed, with the fixed object. */
static void expect_failed(struct json *j)
{
    assert_false(json_ok(j));
    assert_false(json_complete(j));
    assert_string_equal(json_str(j), FAILED_TEXT);
    /* Sticky: nothing written afterwards changes that. */
    json_object_begin(j);
    json_kv_u64(j, "x", 1);
    json_object_end(j);
    assert_false(json_ok(j));
    assert_string_equal(json_str(j), FAILED_TEXT);
    json_free(j);
    /* json_free() makes it usable again. */
    assert_true(json_ok(j));
    json_u64(j, 7);
    assert_string_equal(json_str(j), "7");
    json_free(j);
}

static void test_misuse_value_without_key(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_object_begin(&j);
    json_u64(&j, 1);
    expect_failed(&j);
}

static void test_misuse_key_outside_object(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_key(&j, "top");
    expect_failed(&j);

    json_init(&j);
    json_array_begin(&j);
    json_key(&j, "in array");
    expect_failed(&j);
}

static void test_misuse_two_keys(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_object_begin(&j);
    json_key(&j, "a");
    json_key(&j, "b");
    expect_failed(&j);

    /* A key left without its value, then the object closed. */
    json_init(&j);
    json_object_begin(&j);
    json_key(&j, "a");
    json_object_end(&j);
    expect_failed(&j);
}

static void test_misuse_unbalanced(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_object_end(&j);
    expect_failed(&j);

    json_init(&j);
    json_object_begin(&j);
    json_array_end(&j); /* wrong kind */
    expect_failed(&j);

    json_init(&j);
    json_array_begin(&j);
    json_array_end(&j);
    json_array_end(&j);
    expect_failed(&j);

    /* Unfinished is not failed, but not complete either. */
    json_init(&j);
    json_object_begin(&j);
    json_kv_u64(&j, "a", 1);
    assert_true(json_ok(&j));
    assert_false(json_complete(&j));
    assert_string_equal(json_str(&j), "{\"a\": 1");
    json_free(&j);
}

static void test_misuse_two_top_values(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_object_begin(&j);
    json_object_end(&j);
    json_object_begin(&j);
    expect_failed(&j);
}

static void test_misuse_null(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    json_object_begin(&j);
    json_kv_string(&j, "a", NULL);
    expect_failed(&j);

    json_init(&j);
    json_object_begin(&j);
    json_key(&j, NULL);
    expect_failed(&j);
}

static void test_depth_limit(void **state)
{
    (void)state;
    struct json j;
    json_init(&j);
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        json_array_begin(&j);
    assert_true(json_ok(&j));
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        json_array_end(&j);
    assert_true(json_complete(&j));
    assert_int_equal(strlen(json_str(&j)), 2 * JSON_MAX_DEPTH);
    json_free(&j);

    json_init(&j);
    for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
        json_array_begin(&j);
    expect_failed(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_flat_object),
        cmocka_unit_test(test_empty_containers),
        cmocka_unit_test(test_nesting_and_commas),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_long_string_grows),
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_misuse_value_without_key),
        cmocka_unit_test(test_misuse_key_outside_object),
        cmocka_unit_test(test_misuse_two_keys),
        cmocka_unit_test(test_misuse_unbalanced),
        cmocka_unit_test(test_misuse_two_top_values),
        cmocka_unit_test(test_misuse_null),
        cmocka_unit_test(test_depth_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
