<?php
// Sends N events for one user in batches through the client; prints the events per second.
// Usage: php send_batch.php N BATCH (environment: CLIENT_DIR, QSM_URL, QSM_TOKEN, QSM_USER)

declare(strict_types=1);

require getenv('CLIENT_DIR') . '/autoload.php';

[$n, $batch] = [(int)$argv[1], (int)$argv[2]];
$client = new Qsm\Webhooks\Client((string)getenv('QSM_URL'), (string)getenv('QSM_TOKEN'), ['batch_size' => $batch]);
$user = (string)getenv('QSM_USER');
$events = [];
for ($i = 0; $i < $n; $i++) {
    $events[] = ['type' => 'email.received', 'user' => $user,
        'data' => ['alias' => "a$i@shop.example", 'message_id' => "<bench-$i@mail.example>", 'size_bytes' => 1000 + $i]];
}
$t = microtime(true);
$out = $client->sendEvents($events);
$s = microtime(true) - $t;
echo json_encode(['events' => count($out['events']), 'requests' => $out['requests'], 'seconds' => $s, 'per_second' => count($out['events']) / $s]), "\n";
