// API keys and read tokens (see credentials.hpp).
#include "credentials.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace sluice::api {
namespace {

constexpr std::string_view KEY_PREFIX = "sk_";
constexpr std::size_t KEY_ID_BYTES = 8, KEY_SECRET_BYTES = 32;

std::string to_hex(const unsigned char* bytes, std::size_t size) {
    static constexpr char DIGITS[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(2 * size);
    for (std::size_t i = 0; i < size; ++i) {
        hex += DIGITS[bytes[i] >> 4];
        hex += DIGITS[bytes[i] & 0xf];
    }
    return hex;
}

bool is_hex(std::string_view text, std::size_t digits) {
    return text.size() == digits && std::all_of(text.begin(), text.end(), [](char c) {
               return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
           });
}

std::string token_mac(std::string_view secret, std::string_view job_id, std::string_view expires) {
    std::string message(job_id);
    message += '.';
    message += expires;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &length) == nullptr)
        throw std::runtime_error("HMAC-SHA256 failed");
    return to_hex(mac, length);
}

}  // namespace

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
        throw std::runtime_error("no random bytes from the system");
    return to_hex(reinterpret_cast<const unsigned char*>(raw.data()), bytes);
}

NewKey make_key() {
    NewKey made;
    made.id = random_hex(KEY_ID_BYTES);
    made.key = std::string(KEY_PREFIX) + made.id + '_' + random_hex(KEY_SECRET_BYTES);
    made.hash = key_hash(made.key);
    return made;
}

std::optional<std::string_view> key_id_of(std::string_view key) {
    if (!key.starts_with(KEY_PREFIX)) return std::nullopt;
    key.remove_prefix(KEY_PREFIX.size());
    const std::string_view id = key.substr(0, 2 * KEY_ID_BYTES);
    if (!is_hex(id, 2 * KEY_ID_BYTES) || key.size() < id.size() + 1 || key[id.size()] != '_') return std::nullopt;
    if (!is_hex(key.substr(id.size() + 1), 2 * KEY_SECRET_BYTES)) return std::nullopt;
    return id;
}

std::string key_hash(std::string_view key) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(key.data(), key.size(), digest, &length, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed");
    return to_hex(digest, length);
}

bool same_secret(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string read_token(std::string_view secret, std::string_view job_id, std::int64_t expires_s) {
    const std::string expires = std::to_string(expires_s);
    return expires + '.' + token_mac(secret, job_id, expires);
}

bool token_opens(std::string_view secret, std::string_view token, std::string_view job_id, std::int64_t now_s) {
    const std::size_t dot = token.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 19) return false;
    const std::string_view expires = token.substr(0, dot);
    std::int64_t expires_s = 0;
    const auto [end, error] = std::from_chars(expires.data(), expires.data() + expires.size(), expires_s);
    if (error != std::errc() || end != expires.data() + expires.size() || expires_s < now_s) return false;
    return same_secret(token.substr(dot + 1), token_mac(secret, job_id, expires));
}

}  // namespace sluice::api
