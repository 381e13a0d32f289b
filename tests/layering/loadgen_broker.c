/* SPDX-License-Identifier: Apache-2.0 */
/* Must NOT compile: the load generator including a broker header (built only by the layering/ tests). */
#include "sp_ring.h"

int sp_layering_probe(void);
int sp_layering_probe(void)
{
	return 0;
}
