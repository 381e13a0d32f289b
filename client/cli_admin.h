/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_admin.h: `sealpost admin`, the operator's side of sealpostd's admin
 * socket (docs/OPERATIONS.md). Plain POSIX sockets and no broker code: it
 * builds in the client-only build too, and links nothing of the daemon.
 */
#ifndef SP_CLI_ADMIN_H
#define SP_CLI_ADMIN_H

/* argv[0] is "admin". Returns the exit status (see its --help). */
int cli_admin_main(int argc, char **argv);

#endif
