<?php
$secret = base64_decode(substr(getenv('WEBHOOK_SECRET'), strlen('whsec_')));
$body = file_get_contents('php://input');
$id = $_SERVER['HTTP_X_QSM_ID'] ?? '';
$ts = $_SERVER['HTTP_X_QSM_TIMESTAMP'] ?? '';
if (!ctype_digit($ts) || abs(time() - (int)$ts) > 300) { http_response_code(400); exit; }
$expected = hash_hmac('sha256', "$id.$ts.$body", $secret);
$ok = false;
foreach (explode(' ', $_SERVER['HTTP_X_QSM_SIGNATURE'] ?? '') as $sig) {
    if (str_starts_with($sig, 'v1=') && hash_equals($expected, substr($sig, 3))) { $ok = true; }
}
if (!$ok) { http_response_code(400); exit; }
$event = json_decode($body, true);
http_response_code(204);
