// Request framing as RFC 9112 wants it, beyond what Beast 1.74's parser checks by itself. The
// parser already refuses a Content-Length that is not a number, several Content-Length values
// that differ, any Transfer-Encoding after a Content-Length, and a Content-Length after
// `Transfer-Encoding: chunked`. A Transfer-Encoding whose last coding is not chunked it takes
// as "no body at all", so `Transfer-Encoding: identity` followed by a "body" served that body
// as a second request: a request smuggled past any proxy that framed it differently. It does
// not look for Host either. Pure and thread-safe.
#pragma once

#include <boost/beast/http/message.hpp>

#include <optional>
#include <string_view>

namespace sluice::api {

// Why a request with this header must be refused with 400 and its connection closed, or
// nullopt when its framing is sound: a Transfer-Encoding other than exactly `chunked` (the
// only coding the api decodes, so also `chunked, gzip`, `gzip, chunked`, `chunked, chunked`
// and any in an HTTP/1.0 request), Transfer-Encoding together with Content-Length, an HTTP/1.1
// request without Host, or more than one Host.
std::optional<std::string_view> framing_problem(const boost::beast::http::request_header<>& header);

}  // namespace sluice::api
