/* qp_size_parse / qp_size_format: libvirt's scaled integers. */
#include "config.h"

#include <string.h>

#include "qp-size.h"

typedef struct {
  const char *str;
  guint64 value;
} SizeCase;

static void
test_size_units(void)
{
  static const SizeCase cases[] = {
    { "0", 0 },
    { "512", 512 },
    { "512b", 512 },
    { "512B", 512 },
    { "1k", 1024 },
    { "1K", 1024 },
    { "1KiB", 1024 },
    { "1kib", 1024 },
    { "1KIB", 1024 },
    { "1KB", 1000 },
    { "1kb", 1000 },
    { "1M", 1048576 },
    { "1MiB", 1048576 },
    { "1MB", 1000000 },
    { "2G", 2147483648ULL },
    { "2GiB", 2147483648ULL },
    { "2GB", 2000000000ULL },
    { "1T", 1099511627776ULL },
    { "1TiB", 1099511627776ULL },
    { "1TB", 1000000000000ULL },
    { "1P", 1125899906842624ULL },
    { "1PiB", 1125899906842624ULL },
    { "1PB", 1000000000000000ULL },
    { "1E", 1152921504606846976ULL },
    { "1EiB", 1152921504606846976ULL },
    { "1EB", 1000000000000000000ULL },
    { "15EiB", 15ULL * 1152921504606846976ULL },
    { "18446744073709551615", G_MAXUINT64 },
    { "256MiB", 268435456 },
    { "00064K", 65536 },
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    guint64 value = 1;
    gboolean ok = qp_size_parse(cases[i].str, &value, &error);
    g_assert_no_error(error);
    g_assert_true(ok);
    g_assert_cmpuint(value, ==, cases[i].value);
  }
}

static void
test_size_rejects(void)
{
  static const char *const invalid[] = {
    "",  "-1",  "+1",    "1.5G", "1e3", " 1",  "1 ",    "1 G", "1GiBx",
    "G", "1Gi", "1KIBB", "0x10", "1i",  "1bb", "1kbit", "１",  "1\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS(invalid); i++) {
    g_autoptr(GError) error = NULL;
    guint64 value = 42;
    g_assert_false(qp_size_parse(invalid[i], &value, &error));
    g_assert_error(error, QP_SIZE_ERROR, QP_SIZE_ERROR_INVALID);
    g_assert_cmpuint(value, ==, 42);
    /* Errors quote the input, control characters escaped so the message is one line. */
    if (g_str_equal(invalid[i], "1\n"))
      g_assert_nonnull(strstr(error->message, "'1\\x0a'"));
    else
      g_assert_nonnull(strstr(error->message, invalid[i]));
    g_assert_null(strchr(error->message, '\n'));
  }
}

static void
test_size_long_input_cut(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *huge = g_strnfill(1024 * 1024, '7');
  guint64 value = 0;

  /* a megabyte of digits overflows; the message quotes only its start */
  g_assert_false(qp_size_parse(huge, &value, &error));
  g_assert_error(error, QP_SIZE_ERROR, QP_SIZE_ERROR_OVERFLOW);
  g_assert_cmpuint(strlen(error->message), <, 256);
  g_assert_nonnull(strstr(error->message, "…"));
}

static void
test_size_overflow(void)
{
  static const char *const huge[] = {
    "16EiB",
    "16E",
    "18446744073709551616",
    "99999999999999999999999",
    "17179869184G",
    "18446744073709552KB",
    "19EB",
  };
  for (guint i = 0; i < G_N_ELEMENTS(huge); i++) {
    g_autoptr(GError) error = NULL;
    guint64 value = 42;
    g_assert_false(qp_size_parse(huge[i], &value, &error));
    g_assert_error(error, QP_SIZE_ERROR, QP_SIZE_ERROR_OVERFLOW);
    g_assert_cmpuint(value, ==, 42);
  }
}

static void
test_size_format(void)
{
  static const SizeCase cases[] = {
    { "0 B", 0 },
    { "512 B", 512 },
    { "1023 B", 1023 },
    { "1 KiB", 1024 },
    { "1.5 KiB", 1536 },
    { "128 MiB", 134217728 },
    { "128.2 MiB", 134217728 + 262144 },
    { "1.5 GiB", 1610612736 },
    { "1 TiB", 1099511627776ULL },
    { "16.0 EiB", G_MAXUINT64 },
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *s = qp_size_format(cases[i].value);
    g_assert_cmpstr(s, ==, cases[i].str);
  }
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/size/units", test_size_units);
  g_test_add_func("/size/rejects", test_size_rejects);
  g_test_add_func("/size/long-input-cut", test_size_long_input_cut);
  g_test_add_func("/size/overflow", test_size_overflow);
  g_test_add_func("/size/format", test_size_format);
  return g_test_run();
}
