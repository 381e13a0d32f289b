/* SPDX-License-Identifier: Apache-2.0 */
/* Must compile: crypto sees every layer below it (the control case). */
#include "sp_be.h"
#include "sp_frame.h"
#include "sp_noise.h"

int sp_layering_probe(void);
int sp_layering_probe(void)
{
	return SP_KEY_LEN;
}
