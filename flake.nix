{
  description = "weft: a peer-to-peer overlay mesh and service-discovery runtime for Docker hosts";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in {
      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            nodejs_24 iproute2 iptables util-linux wireguard-go wireguard-tools docker
            dnsutils dnsperf iperf3 dnsmasq serf busybox
          ];
        };
      });

      packages = forAll (pkgs: {
        default = pkgs.buildNpmPackage {
          pname = "weft";
          version = "0.1.0";
          src = ./.;
          nodejs = pkgs.nodejs_24;
          # Set with `nix build` once after a lockfile change (nix prints the expected hash).
          npmDepsHash = pkgs.lib.fakeHash;
          dontNpmBuild = true;
          # The sources run directly on Node 24's type stripping; bin/weft prefers the
          # project's own node, so point it at nixpkgs' instead.
          postInstall = ''
            makeWrapper ${pkgs.nodejs_24}/bin/node $out/bin/weft \
              --add-flags "--disable-warning=ExperimentalWarning $out/lib/node_modules/weft/cli/main.ts" \
              --prefix PATH : ${pkgs.lib.makeBinPath [ pkgs.iproute2 pkgs.iptables pkgs.util-linux pkgs.wireguard-go pkgs.wireguard-tools ]}
          '';
          nativeBuildInputs = [ pkgs.makeWrapper ];
        };
      });
    };
}
