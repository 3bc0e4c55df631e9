<?php
// What a host application does with the PHP client, run by Debian's PHP as the application
// would: one of its users configures an endpoint (the application's own receiver), the
// application records that user's mail events (one of them twice, as a retried job would), and
// mints a portal link for the user. Prints what it got, as JSON, for host_app_suite.py.
//
// Environment: QSM_URL (the CGI through Apache), QSM_TOKEN (app token), RECEIVER_URL,
// SECRET_FILE (where the endpoint's secret is kept for the receiver), QSM_USER.

declare(strict_types=1);

require getenv('CLIENT_DIR') . '/autoload.php';

use Qsm\Webhooks\ApiException;
use Qsm\Webhooks\Client;

$client = new Client((string)getenv('QSM_URL'), (string)getenv('QSM_TOKEN'));
$user = (string)getenv('QSM_USER');
$out = [];

$endpoint = $client->createEndpoint(['user' => $user, 'url' => getenv('RECEIVER_URL'), 'description' => 'shop receiver', 'event_types' => ['email.*', 'usage.*']]);
file_put_contents((string)getenv('SECRET_FILE'), $endpoint['secret']);
$out['endpoint'] = $endpoint['id'];

$mail = static function (int $n): array {
    return ['alias' => "orders@$n.shop.example", 'message_id' => "<$n@mail.example>", 'destinations' => ['owner@shop.example'], 'size_bytes' => 2048 + $n];
};
$first = $client->sendEvent($user, 'email.forwarded', $mail(1), ['idempotency_key' => 'mail-1-forwarded']);
$again = $client->sendEvent($user, 'email.forwarded', $mail(1), ['idempotency_key' => 'mail-1-forwarded']);
$batch = $client->sendEvents([
    ['type' => 'email.received', 'user' => $user, 'data' => ['alias' => 'orders@2.shop.example', 'message_id' => '<2@mail.example>', 'size_bytes' => 10]],
    ['type' => 'usage.threshold', 'user' => $user, 'data' => ['metric' => 'messages', 'used' => 80, 'limit' => 100, 'threshold_percent' => 80, 'period' => '2026-12']],
]);
$out['events'] = array_merge([$first['id']], array_column($batch['events'], 'id'));
$out['duplicate'] = $again['id'] === $first['id'] && $again['events'][0]['duplicate'] === true;
$out['deliveries'] = $first['deliveries'] + $batch['deliveries'];

try {
    $client->sendEvent($user, 'email.forwarded', ['alias' => 'x']);
    $out['invalid'] = 'accepted';
} catch (ApiException $e) {
    $out['invalid'] = [$e->getStatus(), $e->getErrorCode(), array_column((array)$e->getDetails(), 'path')];
}

$link = $client->portalLink($user, ['ttl' => '5m', 'page' => '/endpoints']);
$out['portal'] = $link;
echo json_encode($out), "\n";
