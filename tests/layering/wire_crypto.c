/* SPDX-License-Identifier: Apache-2.0 */
/* Must NOT compile: wire including a crypto header. (built only by the layering/ tests). */
#include "sp_noise.h"

int sp_layering_probe(void);
int sp_layering_probe(void)
{
	return 0;
}
