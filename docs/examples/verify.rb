# Verifying a QSM Webhooks delivery in Ruby (standard library only).
# headers: the request headers by lowercase name; body: the raw request body.
require "base64"
require "openssl"

def qsm_verify(secret, headers, body, tolerance: 300)
  key = Base64.strict_decode64(secret.delete_prefix("whsec_"))
  id, ts = headers["x-qsm-id"], headers["x-qsm-timestamp"].to_s
  return false unless ts.match?(/\A\d+\z/) && (Time.now.to_i - ts.to_i).abs <= tolerance
  expected = OpenSSL::HMAC.hexdigest("SHA256", key, "#{id}.#{ts}.#{body}")
  headers["x-qsm-signature"].to_s.split(" ").any? do |sig|
    sig.start_with?("v1=") && OpenSSL.fixed_length_secure_compare(sig[3..], expected) rescue false
  end
end
