/* SPDX-License-Identifier: Apache-2.0 */
/* Must NOT compile: util including a wire header. (built only by the layering/ tests). */
#include "sp_frame.h"

int sp_layering_probe(void);
int sp_layering_probe(void)
{
	return 0;
}
