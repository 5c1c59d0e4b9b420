// The install listener's port (install-server.ts), on its own so that what only needs the number
// (the aws provider's security group) does not load the server: beside the mesh's 6783 (tcp,
// udp) and the fast data plane's 6784 (udp); weft's metrics are on 6782 (loopback). One number
// to open in a firewall next to the mesh's.
export const INSTALL_PORT = 6785;
