<?php
// Verify an smsgw webhook request (copy this file into your app).
//
//   require 'smsgw_webhook.php';
//   $body = file_get_contents('php://input');            // the raw body, before json_decode
//   if (!smsgw_webhook_verify($body, $_SERVER['HTTP_X_SMSGW_SIGNATURE'] ?? '',
//                             $_SERVER['HTTP_X_SMSGW_TIMESTAMP'] ?? '', [$secret])) {
//       http_response_code(401); exit;
//   }
//   $event = json_decode($body, true);                    // dedupe by $event['id']
//
// The signature is v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>; during a secret
// rotation two are sent, comma-separated, and either may match. Requests older (or newer) than
// $tolerance seconds are refused, so a captured request cannot be replayed.

function smsgw_webhook_verify(string $body, string $signatureHeader, string $timestampHeader,
                              array $secrets, int $tolerance = 300, ?int $now = null): bool
{
    $timestampHeader = trim($timestampHeader);
    if ($signatureHeader === '' || !ctype_digit($timestampHeader)) {
        return false;
    }
    $timestamp = (int) $timestampHeader;
    if (abs(($now ?? time()) - $timestamp) > $tolerance) {
        return false;
    }
    foreach (explode(',', $signatureHeader) as $candidate) {
        $candidate = trim($candidate);
        if (strncmp($candidate, 'v1=', 3) !== 0) {
            continue;
        }
        foreach ($secrets as $secret) {
            $expected = 'v1=' . hash_hmac('sha256', $timestampHeader . '.' . $body, $secret);
            if (hash_equals($expected, $candidate)) {
                return true;
            }
        }
    }
    return false;
}
