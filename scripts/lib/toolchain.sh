# Building the control-plane tools from their published Go modules (sourced by
# scripts/bootstrap and scripts/toolchain-update; see docs/control-plane.md).
#
# Why wrapper modules: k8s.io/kubernetes cannot be `go install`ed at a version because its
# go.mod replaces every staging module (k8s.io/api, k8s.io/client-go, ...) with
# ./staging/src/... and requires them at v0.0.0, which the module proxy does not serve. A
# small module of our own requires k8s.io/kubernetes at the release and replaces each staging
# module with its published v0.<minor>.<patch>; it names the commands as `tool` directives so
# `go mod tidy` keeps exactly what they need. etcd's server module is `package main` at its
# root and replaces its siblings with ../ paths, so it gets a wrapper too; Helm has no
# replaces but is wrapped the same way so go.sum pins every module it builds from.

# Bumped when the way a tool is built changes, so cached binaries are rebuilt.
TC_RECIPE=1

# Go must not fetch another toolchain behind our back: a go line newer than the local Go
# fails loudly instead.
export GOTOOLCHAIN=local
export CGO_ENABLED=0

tc_die() {
  echo "bootstrap: $*" >&2
  exit 1
}

# The packages (and binary names) each wrapper builds.
tc_binaries() {
  case $1 in
    kubernetes) echo "kube-apiserver kube-controller-manager kubectl" ;;
    etcd) echo "etcd" ;;
    helm) echo "helm" ;;
    *) tc_die "unknown component $1" ;;
  esac
}

# The GoMod path of a module version in the module cache (downloads it if needed).
tc_gomod_of() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p'
}

# tc_wrapper COMPONENT VERSION DIR: (re)write DIR/go.mod and DIR/go.sum for the release.
tc_wrapper() {
  local component=$1 version=$2 dir=$3 mod
  mkdir -p "$dir"
  rm -f "$dir/go.mod" "$dir/go.sum"
  (
    cd "$dir"
    go mod init "connection-operator.dev/toolchain/$component" >/dev/null 2>&1
    case $component in
      kubernetes)
        mod=$(tc_gomod_of "k8s.io/kubernetes@$version")
        [ -f "$mod" ] || tc_die "k8s.io/kubernetes@$version is not served by the Go module proxy"
        # The release's own go and godebug lines: the wrapper must not build with other
        # language semantics than upstream does.
        go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "$mod")"
        awk '$1 == "godebug" && NF == 2 { print $2 }' "$mod" | while read -r setting; do
          go mod edit -godebug="$setting"
        done
        # Every staging module, at the published version of this release (v1.X.Y -> v0.X.Y).
        local staging_version="v0.${version#v1.}" module
        for module in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$mod"); do
          go mod edit -replace="$module=$module@$staging_version"
        done
        go mod edit -require="k8s.io/kubernetes@$version" \
          -tool=k8s.io/kubernetes/cmd/kube-apiserver \
          -tool=k8s.io/kubernetes/cmd/kube-controller-manager \
          -tool=k8s.io/kubernetes/cmd/kubectl
        ;;
      etcd)
        mod=$(tc_gomod_of "go.etcd.io/etcd/server/v3@$version")
        go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "$mod")"
        go mod edit -require="go.etcd.io/etcd/server/v3@$version" -tool=go.etcd.io/etcd/server/v3
        ;;
      helm)
        mod=$(tc_gomod_of "helm.sh/helm/v4@$version")
        go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "$mod")"
        go mod edit -require="helm.sh/helm/v4@$version" -tool=helm.sh/helm/v4/cmd/helm
        ;;
    esac
    # Quiet unless it fails: it lists every module it downloads.
    if ! go mod tidy >"$dir/.tidy.log" 2>&1; then
      tail -n 20 "$dir/.tidy.log" >&2
      tc_die "go mod tidy failed for the $component $version wrapper (log: $dir/.tidy.log)"
    fi
    rm -f "$dir/.tidy.log"
  )
}

# The version a wrapper's go.mod requires of the component's main module.
tc_wrapper_version() {
  local component=$1 dir=$2 path
  case $component in
    kubernetes) path=k8s.io/kubernetes ;;
    etcd) path=go.etcd.io/etcd/server/v3 ;;
    helm) path=helm.sh/helm/v4 ;;
  esac
  awk -v p="$path" '($1 == p) { print $2 } ($1 == "require" && $2 == p) { print $3 }' "$dir/go.mod" | head -n1
}

# tc_key COMPONENT VERSION DIR: what a cached build depends on.
tc_key() {
  {
    echo "recipe $TC_RECIPE"
    go version
    echo "$1 $2"
    cat "$3/go.mod" "$3/go.sum"
  } | sha256sum | cut -c1-16
}

# tc_ldflags COMPONENT VERSION DIR: version stamping, so `--version` reports the release.
tc_ldflags() {
  local component=$1 version=$2 dir=$3 flags="-s -w" date
  case $component in
    kubernetes)
      # The release's publication time, from the proxy (stable across rebuilds).
      date=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"Info": "\(.*\)".*/\1/p' | xargs cat | sed -n 's/.*"Time":"\([^"]*\)".*/\1/p')
      local minor=${version#v1.}
      minor=${minor%%.*}
      local pkg
      for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit= -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}"
      done
      ;;
    etcd) flags+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=$version" ;;
    helm) flags+=" -X helm.sh/helm/v4/internal/version.version=$version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" ;;
  esac
  echo "$flags"
}

# Reads `go build -v` output (one package per line) and prints a line every 200 packages.
tc_progress() {
  local component=$1 start=$2 n=0 line
  while IFS= read -r line; do
    echo "$line" >>"$TC_LOG"
    n=$((n + 1))
    if [ $((n % 200)) -eq 0 ]; then
      echo "bootstrap:   $component: $n packages compiled ($(($(date +%s) - start)) s)" >&2
    fi
  done
}

# tc_build COMPONENT VERSION DIR OUT: build the component's binaries into OUT (a new dir).
tc_build() {
  local component=$1 version=$2 dir=$3 out=$4 start bins pkgs=() b
  start=$(date +%s)
  bins=$(tc_binaries "$component")
  echo "bootstrap: building $component $version ($bins) with $(go env GOVERSION); a first build takes minutes (kubernetes: 10-25 min on 2 cores), later runs reuse it" >&2
  mkdir -p "$out"
  TC_LOG="$out.log"
  : >"$TC_LOG"
  case $component in
    kubernetes) for b in $bins; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done ;;
    etcd) pkgs=(go.etcd.io/etcd/server/v3) ;;
    helm) pkgs=(helm.sh/helm/v4/cmd/helm) ;;
  esac
  local ldflags
  ldflags=$(tc_ldflags "$component" "$version" "$dir")
  # One `go build` of every package at once, so they share compilation; -tags notest as
  # upstream's release builds; -trimpath for reproducible paths.
  local target="$out/"
  [ "$component" = kubernetes ] || target="$out/$bins"
  if ! (cd "$dir" && go build -v -trimpath -tags notest -ldflags "$ldflags" -o "$target" "${pkgs[@]}" 2>&1) | tc_progress "$component" "$start"; then
    tail -n 40 "$TC_LOG" >&2
    tc_die "building ${pkgs[*]} failed (full log: $TC_LOG)"
  fi
  for b in $bins; do
    [ -x "$out/$b" ] || tc_die "building ${pkgs[*]} did not produce $b (full log: $TC_LOG)"
  done
  echo "bootstrap: built $component $version in $(($(date +%s) - start)) s" >&2
}
