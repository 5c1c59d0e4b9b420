// The bounds a stack file is read within, so that a hostile or broken file is one clear error,
// never a hang, a crash or a huge allocation. Each is far above what an honest stack needs.

/** A stack of a hundred services with long environments is well under 100 KiB; 1 MiB leaves
 *  room for generous comments and refuses a 10 MB document before the parser sees it. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;

/** Compose files share settings through anchors (`x-defaults: &d` then `<<: *d`), a few dozen
 *  at most. Each alias may expand to a whole subtree, so the count bounds a billion-laughs
 *  file's expansion; 100 is also the yaml package's own default. */
export const MAX_ALIAS_COUNT = 100;

/** A stack file is four or five levels deep (services, service, deploy, update_config, value);
 *  64 levels of brackets or indentation is junk, and refusing it early keeps the parser's
 *  recursion far from the stack limit. */
export const MAX_NESTING_DEPTH = 64;

/** Tutum's stacks were tens of services; placement and the reconciler are tested at hundreds. */
export const MAX_SERVICES = 500;

/** Issue 12: target_num_containers is 0..1000 (a container's name is `<service>-<n>`). */
export const MAX_TARGET_NUM_CONTAINERS = 1000;

/** A DNS label is at most 63 bytes, and a container's name is `<service>-<n>` with n up to
 *  MAX_TARGET_NUM_CONTAINERS, so a service name keeps room for `-1000`. */
export const MAX_SERVICE_NAME_LENGTH = 63 - `-${MAX_TARGET_NUM_CONTAINERS}`.length;

/** The mesh carries at most 32 tags per node of 128 characters (mesh/membership/wire.ts); a
 *  service needing more than a node can carry could never be placed. */
export const MAX_TAGS = 32;
export const MAX_TAG_LENGTH = 128;

/** Every error in a file is listed so it can be fixed in one pass, but a junk file yielding
 *  thousands of errors should not flood the terminal. */
export const MAX_ERRORS = 50;

/** A published port range like `8000-8999:8000-8999` creates one mapping per port; a service
 *  with more than this is a mistake (and Docker itself becomes slow to start it). */
export const MAX_PORTS_PER_SERVICE = 1024;

/** Bounds on lists and strings of one service, well above any real stack, so the desired
 *  state (replicated through Raft) stays small. */
export const MAX_LIST_ITEMS = 1024;
export const MAX_STRING_LENGTH = 65_536;
