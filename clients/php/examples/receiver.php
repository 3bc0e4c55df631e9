<?php
// A webhook receiver in plain PHP (any host, no framework): verifies each delivery on its raw
// bytes with Qsm\Webhooks\Webhook::verify, drops repeats by the event id, then acts on it.
//
// QSM_WEBHOOK_SECRET: the endpoint's whsec_ secret (during a rotation, both, space-separated);
// or QSM_WEBHOOK_SECRET_FILE, a file holding it. QSM_WEBHOOK_LOG: where verified events go
// (one JSON line each). Serve it as the endpoint's URL, e.g. `php -S 127.0.0.1:8081 receiver.php`.

declare(strict_types=1);

require __DIR__ . '/../autoload.php';

use Qsm\Webhooks\Webhook;
use Qsm\Webhooks\WebhookVerificationException;

$secrets = getenv('QSM_WEBHOOK_SECRET') ?: (string)@file_get_contents((string)getenv('QSM_WEBHOOK_SECRET_FILE'));
$log = (string)getenv('QSM_WEBHOOK_LOG');

if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    http_response_code(405);
    exit;
}
$body = (string)file_get_contents('php://input');   // the raw bytes: verify before parsing
try {
    $delivery = Webhook::verify($body, Webhook::headersFromServer($_SERVER), preg_split('/\s+/', trim($secrets)));
} catch (WebhookVerificationException $e) {
    http_response_code(400);
    header('Content-Type: application/json');
    echo json_encode(['error' => $e->getReason(), 'message' => $e->getMessage()]);
    exit;
}

// At least once: the same event may come again (a retry after a lost answer). Keep the ids
// you have handled, e.g. a UNIQUE column; here, the log file.
$seen = is_file($log) ? (string)file_get_contents($log) : '';
if (strpos($seen, '"id":' . json_encode($delivery['id'])) === false) {
    file_put_contents($log, json_encode([
        'id' => $delivery['id'],
        'family' => $delivery['family'],
        'type' => $delivery['event']['type'] ?? null,
        'user' => $delivery['event']['user'] ?? null,
        'attempt' => $_SERVER['HTTP_X_QSM_ATTEMPT'] ?? null,
    ]) . "\n", FILE_APPEND | LOCK_EX);
}
http_response_code(204);
