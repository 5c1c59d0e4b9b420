/** A mistake in how the CLI was called or set up, said to the user as it is. */
export class CliError extends Error {}
