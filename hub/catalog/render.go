package catalog

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"strconv"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// Languages of the guide page.
const (
	LangZH = "zh-CN"
	LangEN = "en"
)

//go:embed templates/guide.html
var templates embed.FS

var guidePage = template.Must(template.New("guide.html").Funcs(template.FuncMap{
	"yuan": func(fen int64) string { return strconv.FormatInt(fen/100, 10) + "." + fmt.Sprintf("%02d", fen%100) },
	"add1": func(i int) int { return i + 1 },
}).ParseFS(templates, "templates/guide.html"))

// labels are the page's words, in each language.
var labels = map[string]map[string]string{
	LangZH: {
		"guide": "办事指南", "summary": "事项简介", "conditions": "申请条件", "materials": "申请材料",
		"material": "材料名称", "form": "材料形式", "copies": "份数", "required": "是否必需", "notes": "备注",
		"template": "空白表格", "yes": "是", "no": "否", "steps": "办理流程", "timeLimit": "办理时限",
		"legal": "法定办结时限", "promised": "承诺办结时限", "days": "个工作日", "onTheSpot": "即办",
		"fees": "收费标准", "free": "不收费", "item": "收费项目", "amount": "金额（元）", "basis": "收费依据",
		"legalBasis": "设定依据", "locations": "办理地点和时间", "address": "地址", "hours": "办理时间",
		"phone": "电话", "contact": "咨询电话", "complaints": "监督投诉", "department": "实施主体", "version": "版本",
		"original": "原件", "copy": "复印件", "original-and-copy": "原件及复印件", "other": "English",
	},
	LangEN: {
		"guide": "Service guide", "summary": "Summary", "conditions": "Conditions", "materials": "Required materials",
		"material": "Material", "form": "Form", "copies": "Copies", "required": "Required", "notes": "Notes",
		"template": "Blank form", "yes": "Yes", "no": "No", "steps": "Steps", "timeLimit": "Time limit",
		"legal": "Statutory time limit", "promised": "Promised time limit", "days": "working days", "onTheSpot": "on the spot",
		"fees": "Fees", "free": "Free of charge", "item": "Item", "amount": "Amount (yuan)", "basis": "Basis",
		"legalBasis": "Legal basis", "locations": "Where and when", "address": "Address", "hours": "Hours",
		"phone": "Phone", "contact": "Enquiries", "complaints": "Complaints", "department": "Department", "version": "Version",
		"original": "original", "copy": "copy", "original-and-copy": "original and copy", "other": "中文",
	},
}

// RenderGuide renders a published guide as an HTML page in lang (zh-CN or en; the content is the
// department's, the labels are in lang). The page is self-contained: no script, its style inline.
func RenderGuide(g api.PublishedGuide, lang string) ([]byte, error) {
	l, ok := labels[lang]
	if !ok {
		return nil, fmt.Errorf("catalog: no labels for language %q", lang)
	}
	other := map[string]string{LangZH: LangEN, LangEN: LangZH}[lang]
	var b bytes.Buffer
	err := guidePage.Execute(&b, struct {
		G         api.PublishedGuide
		L         map[string]string
		Lang      string
		Other     string
		Templates string
	}{g, l, lang, other, api.PublicPrefix + "/templates/"})
	return b.Bytes(), err
}
