/* main.c - entry point of the stratus binary; hands argv to the CLI. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
