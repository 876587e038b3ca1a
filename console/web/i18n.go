package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Languages the console speaks; the first is the default.
var languages = []string{"zh-CN", "en"}

// messages holds every text of the console: key -> {zh-CN, en}. A key missing here shows as itself.
var messages = map[string][2]string{
	"console":        {"自助终端运维台", "Kiosk fleet console"},
	"overview":       {"总览", "Overview"},
	"devices":        {"终端列表", "Kiosks"},
	"device":         {"终端", "Kiosk"},
	"problems":       {"需要处理的终端", "Kiosks needing attention"},
	"no-problems":    {"所有终端运行正常。", "Every kiosk is fine."},
	"by-site":        {"按服务网点", "By site"},
	"by-region":      {"按行政区划", "By region"},
	"site":           {"网点", "Site"},
	"region":         {"区划", "Region"},
	"region-prefix":  {"区划代码前缀", "Region code prefix"},
	"status":         {"状态", "Status"},
	"all":            {"全部", "All"},
	"total":          {"合计", "Total"},
	"filter":         {"筛选", "Filter"},
	"reset":          {"清除", "Clear"},
	"kiosks":         {"台", "kiosks"},
	"none-match":     {"没有符合条件的终端。", "No kiosk matches."},
	"level.ok":       {"正常", "OK"},
	"level.degraded": {"需关注", "Degraded"},
	"level.fault":    {"故障", "Faulty"},
	"level.offline":  {"离线", "Offline"},
	"level.revoked":  {"已吊销", "Revoked"},
	"level.problem":  {"有问题", "Any problem"},
	"online":         {"在线", "Online"},
	"updated":        {"更新于", "Updated"},
	"live-lost":      {"与运维台的连接中断，正在重试…", "Lost contact with the console, retrying…"},
	"hub-error":      {"中台返回错误", "The hub refused"},
	"hub-down":       {"无法连接中台", "Cannot reach the hub"},
	"since":          {"自", "since"},
	"never":          {"从未", "never"},
	"just-now":       {"刚刚", "just now"},
	"last-seen":      {"最后通信", "Last seen"},
	"presence":       {"在线状态", "Presence"},
	"presence-at":    {"状态变化", "Changed"},

	// The presence history: each ended session and why it ended (fleet.DisconnectReason).
	"presence-history":       {"连接记录", "Presence history"},
	"no-sessions":            {"暂无已结束的连接。", "No ended session yet."},
	"log":                    {"日志", "Log"},
	"log-tail":               {"实时日志", "Tail log"},
	"log-tail-for":           {"实时日志 %s", "Tail log %s"},
	"log-tail-stop":          {"停止", "Stop"},
	"log-tail-hint":          {"终端将其日志（个人信息已脱敏）推送一段时间；离线时请求排队 10 分钟。", "The kiosk streams its log (personal data redacted) for a while; an offline kiosk gets the request when it is back within 10 minutes."},
	"log-live":               {"推送中", "streaming"},
	"log-until":              {"至", "until"},
	"log-dropped":            {"因速率或大小限制跳过 %d 行", "%d lines skipped (rate or size bounds)"},
	"no-log":                 {"暂无日志。点击“实时日志”请求终端推送。", "No log lines yet. Use Tail log to ask the kiosk for them."},
	"session-ended":          {"断开时间", "Ended"},
	"session-reason":         {"断开原因", "Reason"},
	"session-duration":       {"连接时长", "Lasted"},
	"session-replica":        {"中心节点", "Hub replica"},
	"disc.clean":             {"正常断开", "Clean disconnect"},
	"disc.keepalive_timeout": {"心跳超时（断电或断网）", "Keep-alive timeout (power or network lost)"},
	"disc.network_reset":     {"连接中断或被重置", "Connection closed or reset"},
	"disc.revoked":           {"已吊销", "Revoked"},
	"disc.replaced":          {"被新连接取代", "Replaced by a newer session"},
	"disc.shutdown":          {"中心停机", "Hub shut down"},
	"disc.protocol_error":    {"协议错误", "Protocol error"},
	"disc.hub_lost":          {"中心节点失联", "Hub replica lost"},

	"model":          {"型号", "Model"},
	"agent":          {"代理版本", "Agent"},
	"enrolled":       {"注册时间", "Enrolled"},
	"cert-expiry":    {"证书到期", "Certificate expires"},
	"health":         {"运行状况", "Health"},
	"health-at":      {"心跳时间", "Heartbeat"},
	"no-health":      {"尚未收到心跳。", "No heartbeat yet."},
	"unreadable":     {"无法解析", "unreadable"},
	"cpu":            {"CPU", "CPU"},
	"memory":         {"内存", "Memory"},
	"disk":           {"磁盘剩余", "Disk free"},
	"outbox":         {"待同步记录", "Unsent records"},
	"agent-memory":   {"代理内存", "Agent memory"},
	"uptime":         {"运行时长", "Uptime"},
	"peripherals":    {"外设", "Peripherals"},
	"peripherals-at": {"外设上报", "Reported"},
	"no-periph":      {"尚未上报外设。", "No peripherals reported yet."},
	"connected":      {"已连接", "connected"},
	"disconnected":   {"未连接", "disconnected"},
	"consumables":    {"耗材", "Consumables"},
	"state":          {"配置", "Configuration"},
	"desired":        {"期望配置", "Desired"},
	"reported":       {"实际配置", "Reported"},
	"version":        {"版本", "version"},
	"drift":          {"配置未同步：终端尚未应用期望配置", "Drift: the kiosk does not run the desired configuration"},
	"in-sync":        {"已同步", "In sync"},
	"not-set":        {"未设置", "not set"},
	"commands":       {"最近命令", "Recent commands"},
	"no-commands":    {"暂无命令。", "No commands yet."},
	"command":        {"命令", "Command"},
	"created":        {"创建", "Created"},
	"result":         {"结果", "Result"},
	"finished":       {"结束于", "finished"},
	"expires":        {"过期", "expires"},
	"send-command":   {"发送命令", "Send a command"},
	"name":           {"名称", "Name"},
	"args":           {"参数 (JSON)", "Arguments (JSON)"},
	"ttl":            {"有效期", "Time to live"},
	"ttl-hint":       {"例如 30s、15m、1h，留空为 1h", "e.g. 30s, 15m, 1h; empty is 1h"},
	"send":           {"发送", "Send"},
	"set-desired":    {"设置期望配置", "Set desired configuration"},
	"doc":            {"配置文档 (JSON 对象)", "Document (JSON object)"},
	"save":           {"保存", "Save"},
	"revoke":         {"吊销终端", "Revoke kiosk"},
	"revoke-warn":    {"吊销后终端立即断开，需重新注册才能接入。", "A revoked kiosk is disconnected at once and must be enrolled again."},
	"revoke-confirm": {"我确认吊销此终端", "I confirm revoking this kiosk"},
	"sent":           {"命令已提交", "Command queued"},
	"desired-saved":  {"期望配置已保存，版本", "Desired configuration saved, version"},
	"revoked-done":   {"终端已吊销。", "The kiosk has been revoked."},
	"form-error":     {"未能提交", "Not sent"},
	"csrf":           {"表单已过期或来源不明，请刷新页面后重试。", "The form expired or came from elsewhere; reload the page and try again."},
	"csrf-cookie":    {"浏览器没有带上本控制台的 Cookie，无法确认表单来自本页面。请允许本站使用 Cookie，刷新页面后重试。", "Your browser did not send the console's cookie, so the form cannot be checked. Allow cookies for this site, reload the page and try again."},
	"back":           {"返回", "Back"},
	"not-found":      {"没有这个页面。", "No such page."},
	"local-time":     {"时间为", "Times in"},

	"alerts":                   {"告警", "Alerts"},
	"alerts-open":              {"只看未解决的告警", "Unresolved alerts only"},
	"alerts-all":               {"显示全部告警（含已解决）", "All alerts, resolved too"},
	"no-alerts":                {"中台不提供告警。", "The hub keeps no alerts."},
	"bulk":                     {"批量操作", "Bulk actions"},
	"no-bulk":                  {"中台不提供批量操作。", "The hub has no bulk actions."},
	"no-bulk-jobs":             {"还没有批量任务。", "No bulk jobs yet."},
	"bulk-jobs":                {"最近的批量任务", "Recent bulk jobs"},
	"bulk-select":              {"选择终端", "Which kiosks"},
	"bulk-action":              {"操作", "Action"},
	"bulk-patch":               {"配置修改 (JSON 合并补丁)", "Change (JSON merge patch)"},
	"bulk-count":               {"统计台数", "Count the kiosks"},
	"bulk-count-first":         {"请先统计台数，再确认。", "Count the kiosks first, then confirm."},
	"bulk-match":               {"台终端符合条件（由中台按您的管辖区域判定）。", "kiosks match (as the hub counts them in your region scope)."},
	"bulk-which":               {"查看是哪些终端", "Which ones"},
	"bulk-confirm.desired":     {"确认修改这些终端的配置", "Confirm: change their configuration"},
	"bulk-confirm.command":     {"确认向这些终端发送命令", "Confirm: send them the command"},
	"bulk-confirm.revoke":      {"确认吊销这些终端", "Confirm: revoke them"},
	"bulk.desired":             {"修改期望配置", "Change desired configuration"},
	"bulk.command":             {"发送命令", "Send a command"},
	"bulk.revoke":              {"吊销终端", "Revoke"},
	"bulk.queued":              {"排队中", "queued"},
	"bulk.delivered":           {"已下发", "delivered"},
	"bulk.acked":               {"已确认", "acked"},
	"bulk.failed":              {"失败", "failed"},
	"bulk.running":             {"进行中", "running"},
	"bulk.done":                {"已完成", "done"},
	"bulk-status.online":       {"在线", "Online"},
	"bulk-status.degraded":     {"在线但外设异常", "Online, a peripheral not OK"},
	"bulk-status.offline":      {"离线", "Offline"},
	"tag":                      {"标签", "Tag"},
	"silence-2h":               {"静默 2 小时", "Silence 2 h"},
	"silenced":                 {"已静默", "silenced"},
	"workorder":                {"派单", "Work order"},
	"workorders":               {"维修派单", "Work orders"},
	"workorders-open":          {"只看未完成的派单", "Open work orders only"},
	"workorders-all":           {"显示全部派单（含已完成）", "All work orders, closed too"},
	"no-workorders":            {"没有未完成的派单。", "No open work orders."},
	"assignee":                 {"指派给", "Assignee"},
	"bring":                    {"需携带", "What to bring"},
	"note":                     {"备注", "Note"},
	"create-workorder":         {"创建派单", "Create the work order"},
	"close-workorder":          {"已完成，关闭派单", "Done: close it"},
	"closed-by":                {"关闭人", "Closed by"},
	"wo.open":                  {"待处理", "open"},
	"wo.closed":                {"已关闭", "closed"},
	"bring.paper":              {"打印纸卷", "Paper roll"},
	"bring.ribbon":             {"色带", "Ribbon"},
	"bring.spare":              {"备用设备", "A spare"},
	"bring.nothing":            {"无需备件（检查盖板）", "Nothing (check the cover)"},
	"no-open-alerts":           {"没有未解决的告警。", "No unresolved alerts."},
	"opened":                   {"发生于", "opened"},
	"acked-by":                 {"确认人", "acknowledged by"},
	"resolved-by":              {"解决人", "resolved by"},
	"the-hub":                  {"系统（已恢复）", "the hub (cleared)"},
	"ack":                      {"确认，我来处理", "Acknowledge"},
	"resolve":                  {"已解决", "Resolve"},
	"alert.open":               {"未处理", "open"},
	"alert.acknowledged":       {"处理中", "acknowledged"},
	"alert.resolved":           {"已解决", "resolved"},
	"rule.offline":             {"终端离线", "kiosk offline"},
	"rule.peripheral-fault":    {"外设故障", "peripheral fault"},
	"rule.peripheral-degraded": {"外设需关注", "peripheral needs attention"},

	"staff-audit": {"操作审计", "Audit log"},
	"no-audit":    {"中台不提供审计日志。", "The hub keeps no audit log."},
	"actor":       {"操作人", "Who"},
	"target":      {"对象", "Target"},
	"action":      {"操作", "Action"},
	"source":      {"来源地址", "From"},
	"no-entries":  {"没有符合条件的记录。", "No entries match."},
	"older":       {"更早的记录", "Older entries"},

	"login":          {"登录", "Log in"},
	"login-button":   {"使用工作人员账号登录", "Log in with your staff account"},
	"login-intro":    {"请使用中台的工作人员账号登录。您能看到和操作的终端取决于账号的角色和管辖区域。", "Log in with your staff account at the hub. The kiosks you see and act on depend on your account's roles and region scope."},
	"login-failed":   {"登录未成功", "Login failed"},
	"login-stale":    {"此次登录已过期、已完成，或不是在本浏览器中发起的。请重新登录。", "This login expired, was finished already, or was started in another browser. Log in again."},
	"no-role":        {"您的账号没有使用运维台的角色（需要运维或管理员）。", "Your account has no role that may use the fleet console (field ops or admin)."},
	"logged-out":     {"登录已失效，请刷新页面重新登录。", "Your session has ended: reload the page to log in again."},
	"logout":         {"退出", "Log out"},
	"scope":          {"管辖区域", "region"},
	"whole-country":  {"全部区域", "all regions"},
	"setup-mode":     {"初始设置模式：所有访问者共用中台的引导令牌操作，仅供首次设置使用。请创建工作人员账号（fleetctl staff create），然后以 --client-secret-file 启动运维台，改为工作人员登录。", "Setup mode: every visitor acts with the hub's shared bootstrap token. For first setup only: create staff accounts (fleetctl staff create), then start the console with --client-secret-file so that staff log in."},
	"role.admin":     {"管理员", "admin"},
	"role.fieldops":  {"运维", "field ops"},
	"role.reviewer":  {"审核", "reviewer"},
	"role.developer": {"开发", "developer"},

	"err.name-required":  {"name：必填", "name: required"},
	"err.name-unknown":   {"name：终端没有命令 %q（可用：%s）", "name: the kiosk has no command %q (it runs %s)"},
	"err.args-required":  {"args：%s 需要参数 %s", "args: %s needs %s"},
	"err.args-json":      {"args：不是有效的 JSON：%s", "args: not valid JSON: %s"},
	"err.doc-object":     {"doc：必须是 JSON 对象 {...}", "doc: must be a JSON object {...}"},
	"err.doc-json":       {"doc：不是有效的 JSON：%s", "doc: not valid JSON: %s"},
	"err.confirm-revoke": {"请勾选确认框后再吊销", "tick the confirmation box to revoke"},

	"class.id-reader":        {"身份证阅读器", "ID card reader"},
	"class.receipt-printer":  {"凭条打印机", "Receipt printer"},
	"class.document-printer": {"A4 打印机", "A4 printer"},
	"class.qr-scanner":       {"扫码器", "QR scanner"},
	"class.document-scanner": {"文档扫描仪", "Document scanner"},

	"pstatus.ok":       {"正常", "ok"},
	"pstatus.degraded": {"需关注", "degraded"},
	"pstatus.fault":    {"故障", "fault"},
	"pstatus.unknown":  {"未知", "unknown"},

	"consumable.paper": {"纸张", "paper"},
	"consumable.toner": {"墨粉", "toner"},
	"clevel.ok":        {"充足", "ok"},
	"clevel.low":       {"不足", "low"},
	"clevel.empty":     {"用尽", "empty"},
	"clevel.unknown":   {"未知", "unknown"},

	"cmd.queued":    {"排队中", "queued"},
	"cmd.delivered": {"已下发", "delivered"},
	"cmd.accepted":  {"执行中", "accepted"},
	"cmd.succeeded": {"成功", "succeeded"},
	"cmd.failed":    {"失败", "failed"},
	"cmd.expired":   {"已过期", "expired"},

	"reason.offline":                {"离线（%s）", "offline (%s)"},
	"reason.revoked":                {"已吊销", "revoked"},
	"reason.disk-low":               {"磁盘将满（剩余 %s）", "disk nearly full (%s free)"},
	"reason.memory-high":            {"内存将满（已用 %s）", "memory nearly full (%s used)"},
	"reason.cert-expiring":          {"证书 %s 天内到期，需重新注册", "certificate expires within %s days: enroll again"},
	"reason.outbox-backlog":         {"数据积压 %s 条未同步", "%s records not yet synced"},
	"reason.paper-out":              {"缺纸", "paper out"},
	"reason.paper-near-end":         {"纸将用尽", "paper nearly out"},
	"reason.paper-end-stop":         {"缺纸", "paper out"},
	"reason.cover-open":             {"机盖打开", "cover open"},
	"reason.door-open":              {"机门打开", "door open"},
	"reason.cutter-error":           {"切刀故障", "cutter error"},
	"reason.unrecoverable-error":    {"不可恢复的故障", "unrecoverable error"},
	"reason.auto-recoverable-error": {"暂时故障（可自动恢复）", "temporary error (recovers by itself)"},
	"reason.recoverable-error":      {"可恢复的故障", "recoverable error"},
	"reason.disconnected":           {"未连接", "disconnected"},
	"reason.no-response":            {"无响应", "not responding"},
	"reason.no-profile":             {"无匹配的固件配置", "no matching firmware profile"},
	"reason.no-driver":              {"缺少驱动", "no driver"},
	"reason.sam-fault":              {"安全模块（SAM）故障", "security module (SAM) fault"},
	"reason.media-empty":            {"缺纸", "paper out"},
	"reason.media-needed":           {"需要装纸", "paper needed"},
	"reason.media-low":              {"纸张不足", "paper low"},
	"reason.media-jam":              {"卡纸", "paper jam"},
	"reason.toner-low":              {"墨粉不足", "toner low"},
	"reason.toner-empty":            {"墨粉用尽", "toner empty"},
	"reason.marker-supply-low":      {"耗材不足", "supplies low"},
	"reason.marker-supply-empty":    {"耗材用尽", "supplies empty"},
	"reason.input-tray-missing":     {"纸盒未装入", "paper tray missing"},
	"reason.output-area-full":       {"出纸口已满", "output tray full"},
	"reason.paused":                 {"已暂停", "paused"},
	"reason.shutdown":               {"已关机", "shut down"},
	"reason.offline-printer":        {"脱机", "offline"},
	"reason.not-accepting-jobs":     {"不接受打印任务", "not accepting jobs"},
	"reason.waiting-online":         {"等待联机", "waiting to come online"},
	"reason.status-fault":           {"故障", "fault"},
	"reason.status-degraded":        {"需关注", "degraded"},
	"reason.status-error":           {"故障", "error"},
	"reason.status-":                {"未连接", "not connected"},

	// The app catalog.
	"apps":                 {"应用目录", "Apps"},
	"apps-count":           {"个应用", "apps"},
	"app":                  {"应用", "App"},
	"no-apps":              {"没有应用。", "No apps."},
	"department":           {"部门", "Department"},
	"kind":                 {"类型", "Kind"},
	"description":          {"说明", "Description"},
	"versions":             {"版本", "Versions"},
	"no-versions":          {"还没有版本。", "No versions yet."},
	"state-col":            {"状态", "State"},
	"guide":                {"办事指南", "Guide"},
	"audit":                {"审计记录", "Audit trail"},
	"when":                 {"时间", "When"},
	"channel":              {"渠道", "Channel"},
	"from-to":              {"状态变化", "From → to"},
	"who":                  {"操作人", "Who"},
	"why":                  {"原因", "Why"},
	"kind.kiosk-bundle":    {"自助终端应用", "Kiosk bundle"},
	"kind.web-link":        {"网页链接", "Web link"},
	"kind.mini-program":    {"小程序页面", "Mini-program page"},
	"kind.mobile-module":   {"移动端模块", "Mobile module"},
	"channel.web":          {"政务服务网", "Web"},
	"channel.mobile":       {"移动端", "Mobile"},
	"channel.mini-program": {"小程序", "Mini-program"},
	"channel.kiosk":        {"自助终端", "Kiosk"},
	"st.draft":             {"草稿", "draft"},
	"st.submitted":         {"待审核", "submitted"},
	"st.approved":          {"已通过", "approved"},
	"st.rejected":          {"已驳回", "rejected"},
	"st.published":         {"已发布", "published"},
	"st.listed":            {"已上架", "listed"},
	"st.delisted":          {"已下架", "delisted"},
	"st.retired":           {"已停用", "retired"},
	"rollouts":             {"分批发布", "Rollouts"},
	"no-rollouts":          {"还没有发布任务。", "No rollouts yet."},
	"wave":                 {"批次", "Wave"},
	"soak":                 {"观察期", "soak"},
	"progress":             {"进度", "Progress"},
	"failed":               {"失败", "Failed"},
	"n-updated":            {"已更新", "Updated"},
	"assigned":             {"已下发", "Assigned"},
	"waiting":              {"待下发", "Waiting"},
	"ro.running":           {"进行中", "running"},
	"ro.paused":            {"已暂停", "paused"},
	"ro.completed":         {"已完成", "completed"},
	"ro.aborted":           {"已中止", "aborted"},
	"ro.rolled-back":       {"已回滚", "rolled back"},
}

// L is the console's words in one language, and its way of showing times.
type L struct {
	Lang string // zh-CN or en
	Loc  *time.Location
	Now  time.Time
}

func (l *L) idx() int {
	if l.Lang == "en" {
		return 1
	}
	return 0
}

// T returns the text for key, formatted with args when given.
func (l *L) T(key string, args ...any) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if len(args) > 0 {
		return fmt.Sprintf(m[l.idx()], args...)
	}
	return m[l.idx()]
}

// Or returns the text for prefix+code, or code itself when there is none: codes the console does
// not know are shown as the kiosk sent them (a code is not an identity field: it is not masked).
func (l *L) Or(prefix, code string) string {
	if m, ok := messages[prefix+code]; ok {
		return m[l.idx()]
	}
	return code
}

// Reason puts a reason in words: "凭条打印机 receipt0：缺纸".
func (l *L) Reason(r Reason) string {
	code := r.Code
	if code == "offline" && r.Device != "" {
		code = "offline-printer" // a printer that says it is offline, not the kiosk
	}
	var s string
	if m, ok := messages["reason."+code]; ok {
		s = m[l.idx()]
		switch {
		case code == "offline" && r.Since.IsZero():
			s = strings.TrimSuffix(strings.TrimSuffix(s, "（%s）"), " (%s)")
		case code == "offline":
			s = fmt.Sprintf(s, l.Ago(r.Since))
		case strings.Contains(s, "%s"):
			s = fmt.Sprintf(s, r.Value)
		}
	} else {
		s = r.Code
	}
	if r.Device != "" {
		sep := "："
		if l.Lang == "en" {
			sep = ": "
		}
		s = strings.TrimSpace(l.Or("class.", r.Class)+" "+r.Device) + sep + s
	}
	return s
}

// Ago says how long before Now t was: "5 分钟前", "5 min ago".
func (l *L) Ago(t time.Time) string {
	if t.IsZero() {
		return l.T("never")
	}
	d := l.Now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	if d < 10*time.Second {
		return l.T("just-now")
	}
	var n int
	var unit [2]string
	switch {
	case d < time.Minute:
		n, unit = int(d/time.Second), [2]string{"秒", "s"}
	case d < time.Hour:
		n, unit = int(d/time.Minute), [2]string{"分钟", " min"}
	case d < 48*time.Hour:
		n, unit = int(d/time.Hour), [2]string{"小时", " h"}
	default:
		n, unit = int(d/(24*time.Hour)), [2]string{"天", " d"}
	}
	switch {
	case l.Lang == "en" && future:
		return "in " + strconv.Itoa(n) + unit[1]
	case l.Lang == "en":
		return strconv.Itoa(n) + unit[1] + " ago"
	case future:
		return strconv.Itoa(n) + " " + unit[0] + "后"
	}
	return strconv.Itoa(n) + " " + unit[0] + "前"
}

// Time shows t in the console's time zone with its UTC offset: "2026-11-25 20:14:50 +08:00".
func (l *L) Time(t time.Time) string {
	if t.IsZero() {
		return l.T("never")
	}
	return t.In(l.Loc).Format("2006-01-02 15:04:05 -07:00")
}

// negotiate picks the language: ?lang=, then the kf_lang cookie, then Accept-Language, then
// zh-CN. remember is true when ?lang= chose it, so that the choice is kept in a cookie.
func negotiate(r *http.Request) (lang string, remember bool) {
	if q := r.URL.Query().Get("lang"); q != "" {
		if l, ok := matchLang(q); ok {
			return l, true
		}
	}
	if c, err := r.Cookie(langCookie); err == nil {
		if l, ok := matchLang(c.Value); ok {
			return l, false
		}
	}
	if l, ok := acceptLanguage(r.Header.Get("Accept-Language")); ok {
		return l, false
	}
	return languages[0], false
}

func matchLang(tag string) (string, bool) {
	tag = strings.ToLower(strings.TrimSpace(tag))
	switch {
	case tag == "zh" || strings.HasPrefix(tag, "zh-"):
		return "zh-CN", true
	case tag == "en" || strings.HasPrefix(tag, "en-"):
		return "en", true
	}
	return "", false
}

// acceptLanguage picks the supported language the header prefers most (RFC 9110 §12.5.4): the
// highest q, the earliest on a tie; q=0 means "not this one".
func acceptLanguage(h string) (string, bool) {
	best, bestQ := "", 0.0
	for part := range strings.SplitSeq(h, ",") {
		tag, params, _ := strings.Cut(part, ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		if l, ok := matchLang(tag); ok && q > bestQ {
			best, bestQ = l, q
		}
	}
	return best, best != ""
}
