/* cli.h - the stratus command line: verbs, help, exit codes. */
#ifndef ST_CLI_H
#define ST_CLI_H
int cli_main(int argc, char **argv);
#endif
