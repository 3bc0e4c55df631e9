<?php
// The host application's account page, served by `php -S` on its own origin: it mints a portal
// link for its signed-in user with the PHP client and shows the webhook pages in a frame.
// Environment: CLIENT_DIR, QSM_URL, QSM_TOKEN, QSM_USER.

declare(strict_types=1);

require getenv('CLIENT_DIR') . '/autoload.php';

$client = new Qsm\Webhooks\Client((string)getenv('QSM_URL'), (string)getenv('QSM_TOKEN'));
$page = $_GET['page'] ?? '/endpoints';
$link = $client->portalLink((string)getenv('QSM_USER'), ['embed' => true, 'page' => $page]);
?><!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Shop · account</title></head>
<body>
<h1>Shop account</h1>
<nav><a href="/?page=/endpoints">Webhooks</a> · <a href="/?page=/deliveries">Deliveries</a></nav>
<iframe id="webhooks" title="Webhooks" src="<?= htmlspecialchars($link['url'], ENT_QUOTES) ?>" style="width:100%;height:900px;border:0"></iframe>
</body>
</html>
