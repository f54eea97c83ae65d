// sluice-keygen: makes the CURVE keypairs of README.md, Security.
//
//   sluice-keygen NAME             writes NAME.key (the secret key, mode 0600) and NAME.pub
//   sluice-keygen --public FILE    prints the public key of secret key file FILE
//
// It never overwrites a file. Exit status: 0 done, 1 a file could not be written or read, 2 usage.
#include "curve.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

// Writes `text` to a new file `path` with `mode`; false (and a message) if it exists or fails.
bool write_new(const std::string& path, const std::string& text, mode_t mode) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const int error = errno;
    if (fd >= 0) ok = ::close(fd) == 0 && ok;
    if (!ok) std::fprintf(stderr, "sluice-keygen: %s: %s\n", path.c_str(), std::strerror(error));
    return ok;
}

int usage() {
    std::fprintf(stderr, "usage: sluice-keygen NAME          (writes NAME.key, secret, and NAME.pub)\n"
                         "       sluice-keygen --public FILE (prints the public key of a secret key file)\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--public") {
        try {
            std::printf("%s\n", sluice::curve::public_key_of(sluice::curve::read_key(argv[2])).c_str());
            return 0;
        } catch (const sluice::curve::KeyFileError& e) {
            std::fprintf(stderr, "sluice-keygen: %s\n", e.what());
            return 1;
        }
    }
    if (argc != 2 || argv[1][0] == '-') return usage();
    const std::string name = argv[1];
    char public_key[sluice::curve::KEY_LENGTH + 1];
    char secret_key[sluice::curve::KEY_LENGTH + 1];
    if (zmq_curve_keypair(public_key, secret_key) != 0) {
        std::fprintf(stderr, "sluice-keygen: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    const std::string secret = std::string("# Sluice CURVE secret key: keep it on this host, readable only by the service\n") +
                               secret_key + "\n";
    const std::string pub = std::string("# Sluice CURVE public key: goes in the broker's allow-list, or to its clients\n") +
                            public_key + "\n";
    if (!write_new(name + ".key", secret, 0600)) return 1;
    if (!write_new(name + ".pub", pub, 0644)) return 1;
    std::printf("%s\n", public_key);
    return 0;
}
