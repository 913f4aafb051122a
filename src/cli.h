/* The command line: `postern SUBCOMMAND [options]`. Each function takes the arguments after
 * the subcommand words and returns the exit code: 0 ok, 2 usage error, 1 other failure. */
#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

int cli_main(int argc, char **argv);

#endif
