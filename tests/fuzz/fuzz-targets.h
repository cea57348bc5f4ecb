/* The fuzz targets' entry points. Each is the body of one libFuzzer target (fuzz-main.c
 * binds it to LLVMFuzzerTestOneInput) and is also called by tests/fuzz/test-fuzz-replay.c
 * over the kept corpora and crash reproducers in every normal test run.
 *
 * Each returns 0 and aborts (g_assert) when an invariant does not hold. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* qcow2 header and extension walk, allocation scan and cache arithmetic (lib/). */
int
qp_fuzz_qcow2_header(const uint8_t *data, size_t size);

/* The <qc:l2cache> element alone (qp_policy_parse), with a to_element round trip. */
int
qp_fuzz_policy(const uint8_t *data, size_t size);

/* Domain XML: parse, name, uuid, disks, policy; serialization is lossless. */
int
qp_fuzz_domain_xml(const uint8_t *data, size_t size);

/* Domain XML rewrite: qp_plan_apply with a plan made in the harness (no image is read),
 * then the rewritten document must hold exactly what the plan wrote. */
int
qp_fuzz_xml_rewrite(const uint8_t *data, size_t size);

/* Makes GLib criticals and warnings fatal, as g_test_init does for the replay. */
void
qp_fuzz_init(void);
